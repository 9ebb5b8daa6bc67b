package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/clarion/sentinel/internal/api"
	"github.com/clarion/sentinel/internal/app"
	"github.com/clarion/sentinel/internal/config"
	"github.com/clarion/sentinel/internal/demo"
	"github.com/clarion/sentinel/internal/emulator"
	"github.com/clarion/sentinel/internal/store"
)

// clock is the one fake clock of Clarion and the emulator in a test: polls
// are driven by PollOnce, and time moves only when the test says so.
type clock struct {
	mu   sync.Mutex
	t    time.Time
	real bool // follow the wall clock (soak tests with running engines)
}

func (c *clock) Now() time.Time {
	if c.real {
		return time.Now().UTC()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	if t.After(c.t) {
		c.t = t
	}
	c.mu.Unlock()
}

// env is one Clarion replica and the emulator, both on loopback HTTP.
type env struct {
	t       *testing.T
	clock   *clock
	emu     *emulator.Emulator
	emuURL  string
	app     *app.App
	url     string
	dataDir string
	logs    *bytes.Buffer
	ws      store.Workspace
	token   string
}

type envOpts struct {
	pageSize  int
	lookback  time.Duration
	interval  time.Duration
	realClock bool
	edit      func(*emulator.Config)
}

func setup(t *testing.T, opts ...envOpts) *env {
	t.Helper()
	var o envOpts
	if len(opts) > 0 {
		o = opts[0]
	}
	clk := &clock{t: time.Date(2026, 6, 21, 10, 0, 0, 0, time.UTC), real: o.realClock}
	ecfg := emulator.DefaultConfig()
	ecfg.Now = clk.Now
	if o.edit != nil {
		o.edit(&ecfg)
	}
	emu, err := emulator.New(ecfg)
	if err != nil {
		t.Fatal(err)
	}
	emuSrv := httptest.NewServer(emu.Handler())
	t.Cleanup(emuSrv.Close)

	srv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	cfg := config.Defaults()
	cfg.Addr = srv.Listener.Addr().String()
	cfg.PublicURL = srv.URL
	cfg.DataDir = dir
	cfg.EntraAuthority = emuSrv.URL
	cfg.SentinelMCPURL = emuSrv.URL + "/mcp"
	cfg.ClientID, cfg.ClientSecret = ecfg.ClientID, ecfg.ClientSecret
	cfg.LogLevel = "debug"
	if o.pageSize > 0 {
		cfg.PageSize = o.pageSize
	}
	if o.lookback > 0 {
		cfg.Lookback = o.lookback
	}
	if o.interval > 0 {
		cfg.PollInterval = o.interval
	}
	if err := cfg.Finish(); err != nil {
		t.Fatal(err)
	}
	logs := &bytes.Buffer{}
	log := slog.New(slog.NewTextHandler(&lockedWriter{w: logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := app.New(t.Context(), cfg, log, app.Options{Now: clk.Now, AutoMigrate: true, Owner: "replica-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	srv.Config.Handler = a.Handler()
	e := &env{t: t, clock: clk, emu: emu, emuURL: emuSrv.URL, app: a, url: srv.URL, dataDir: dir, logs: logs}
	e.ws, e.token, err = a.CreateWorkspace(t.Context(), "SOC")
	if err != nil {
		t.Fatal(err)
	}
	return e
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// connect runs the browser connect flow for the env's workspace.
func (e *env) connect() {
	e.t.Helper()
	if err := demo.Connect(e.t.Context(), e.url, e.token, ""); err != nil {
		e.t.Fatalf("connect: %v", err)
	}
}

// do sends an API request with the env's token and decodes the JSON answer.
func (e *env) do(method, path string, body any, out any) int {
	e.t.Helper()
	return doAs(e.t, e.url, e.token, method, path, body, out)
}

func doAs(t *testing.T, base, token, method, path string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, path, b, err)
		}
	}
	return resp.StatusCode
}

// addMonitor creates a monitor through the API and returns it.
func (e *env) addMonitor(body map[string]any) api.MonitorView {
	e.t.Helper()
	if _, ok := body["workspace_id"]; !ok {
		body["workspace_id"] = emulator.ContosoWorkspaceID
	}
	if _, ok := body["name"]; !ok {
		body["name"] = fmt.Sprintf("monitor %d", time.Now().UnixNano())
	}
	var m api.MonitorView
	if code := e.do("POST", "/api/v1/monitors", body, &m); code != http.StatusCreated {
		e.t.Fatalf("create monitor: HTTP %d", code)
	}
	return m
}

// poll runs one poll of the monitor now, moving the clock to its due time
// first if needed; it returns the poll's error.
func (e *env) poll(monitorID string) error {
	e.t.Helper()
	m, err := e.app.Store.GetMonitor(e.t.Context(), e.ws.ID, monitorID)
	if err != nil {
		e.t.Fatal(err)
	}
	e.clock.Set(m.NextPollAt)
	next, err := e.app.Engine.PollOnce(e.t.Context(), monitorID)
	if next.IsZero() && err == nil {
		e.t.Fatalf("monitor %s was not polled (not due or leased)", monitorID)
	}
	return err
}

// mustPoll polls and fails the test on a poll error.
func (e *env) mustPoll(monitorID string) {
	e.t.Helper()
	if err := e.poll(monitorID); err != nil {
		e.t.Fatalf("poll: %v", err)
	}
}

// alerts lists every alert of the env's workspace through the API.
func (e *env) alerts() []api.AlertView { return e.alertsAs(e.token) }

// alertsAs lists every alert of the workspace of an API token, page by page.
func (e *env) alertsAs(token string) []api.AlertView {
	e.t.Helper()
	var all []api.AlertView
	cursor := ""
	for {
		var page struct {
			Alerts     []api.AlertView `json:"alerts"`
			NextCursor string          `json:"next_cursor"`
		}
		path := "/api/v1/alerts?limit=500"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		if code := doAs(e.t, e.url, token, "GET", path, nil, &page); code != 200 {
			e.t.Fatalf("list alerts: HTTP %d", code)
		}
		all = append(all, page.Alerts...)
		if page.NextCursor == "" {
			return all
		}
		cursor = page.NextCursor
	}
}

// alertCounts counts the env's workspace's alerts per incident id.
func (e *env) alertCounts() map[string]int { return e.alertCountsAs(e.token) }

// alertCountsAs counts the alerts of an API token's workspace per incident id.
func (e *env) alertCountsAs(token string) map[string]int {
	out := map[string]int{}
	for _, a := range e.alertsAs(token) {
		out[a.IncidentID]++
	}
	return out
}

// monitor reads a monitor through the API.
func (e *env) monitor(id string) api.MonitorView {
	e.t.Helper()
	var m api.MonitorView
	if code := e.do("GET", "/api/v1/monitors/"+id, nil, &m); code != 200 {
		e.t.Fatalf("get monitor: HTTP %d", code)
	}
	return m
}

// incident adds one incident to Contoso's first workspace, visible at once.
func (e *env) incident(name string, created time.Time, fields map[string]any) {
	e.t.Helper()
	e.incidentVisibleAt(name, created, e.clock.Now(), fields)
}

func (e *env) incidentVisibleAt(name string, created, visible time.Time, fields map[string]any) {
	e.t.Helper()
	row := emulator.Row{"IncidentName": name, "Title": "Incident " + name, "Severity": "Medium", "Status": "New",
		"CreatedTime": created, "LastModifiedTime": created}
	for k, v := range fields {
		if v == (absent{}) {
			delete(row, k)
			continue
		}
		row[k] = v
	}
	if _, err := e.emu.AddIncidents(emulator.ContosoTenantID, emulator.ContosoWorkspaceID, []emulator.Row{row}, visible); err != nil {
		e.t.Fatal(err)
	}
}

// absent as a field value leaves the column out of the row.
type absent struct{}

func guid(n int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", n) }

// dbFiles lists the SQLite files of the env (main, WAL, shm).
func (e *env) dbFiles() []string {
	m, _ := filepath.Glob(filepath.Join(e.dataDir, "clarion.db*"))
	return m
}

var _ = context.Background
