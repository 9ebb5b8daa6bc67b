// Package demo owns `clarion demo`: everything on this machine with no
// configuration. It starts the Microsoft emulator and Clarion on loopback,
// creates the default Clarion workspace, connects it through the emulator's
// real admin-consent and sign-in flow (the same HTTP a browser makes), adds a
// monitor, and keeps new incidents arriving so that alerts appear within a
// poll interval.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/clarion/sentinel/internal/app"
	"github.com/clarion/sentinel/internal/auth"
	"github.com/clarion/sentinel/internal/config"
	"github.com/clarion/sentinel/internal/emulator"
	"github.com/clarion/sentinel/internal/integration"
	"github.com/clarion/sentinel/internal/sentinel"
	"github.com/clarion/sentinel/internal/store"
	"github.com/clarion/sentinel/internal/tools"
)

// Credentials is what the demo writes to DATA_DIR/demo-credentials.json.
type Credentials struct {
	URL         string `json:"url"`
	APIToken    string `json:"api_token"`
	Workspace   string `json:"workspace"`
	WorkspaceID string `json:"workspace_id"`
	EmulatorURL string `json:"emulator_url"`
	// Username and Password sign in to the web UI (the workspace's admin).
	Username string `json:"username"`
	Password string `json:"password"`
}

// DemoUsername is the demo admin's sign-in name.
const DemoUsername = "admin@clarion.demo"

type files []string

func (f *files) String() string     { return strings.Join(*f, ",") }
func (f *files) Set(s string) error { *f = append(*f, s); return nil }

// Main runs the demo until ctx ends.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("clarion demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8080", "Clarion's listen address")
	dataDir := fs.String("data-dir", "", "data directory (default: a new temporary folder)")
	interval := fs.Duration("poll-interval", 60*time.Second, "poll interval of the demo monitor")
	every := fs.Duration("incident-every", 20*time.Second, "how often a new built-in incident arrives (without --incidents)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	var incidentFiles files
	fs.Var(&incidentFiles, "incidents", "incident file to replay as new incidents (ARM pages, Log Analytics rows, Graph incidents); repeatable")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *interval < time.Second {
		return fmt.Errorf("poll-interval: %s is below 1s", *interval)
	}
	var replay []emulator.Row
	for _, f := range incidentFiles {
		rows, err := emulator.LoadIncidents(f)
		if err != nil {
			return fmt.Errorf("incidents: %s: %w", f, err)
		}
		replay = append(replay, rows...)
	}
	if *dataDir == "" {
		d, err := os.MkdirTemp("", "clarion-demo-")
		if err != nil {
			return err
		}
		*dataDir = d
	}
	if err := os.MkdirAll(*dataDir, 0o700); err != nil {
		return fmt.Errorf("data-dir: %w", err)
	}
	log := app.NewLogger(stderr, *logLevel, false)

	// The emulator, on its own loopback port.
	emuCfg := emulator.DefaultConfig()
	emuCfg.Logger = log.With("component", "emulator")
	emu, err := emulator.New(emuCfg)
	if err != nil {
		return err
	}
	emuLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	emuURL := "http://" + emuLn.Addr().String()
	emuSrv := &http.Server{Handler: emu.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go emuSrv.Serve(emuLn)
	defer emuSrv.Close()

	// Listen first, so that --addr 127.0.0.1:0 picks a free port that the
	// URLs then name.
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("addr: %w", err)
	}
	defer ln.Close()

	// Clarion, pointed at the emulator: configuration only.
	cfg := config.Defaults()
	cfg.Addr = ln.Addr().String()
	cfg.DataDir = *dataDir
	cfg.EntraAuthority = emuURL
	cfg.SentinelMCPURL = emuURL + "/mcp"
	cfg.ClientID = emuCfg.ClientID
	cfg.ClientSecret = emuCfg.ClientSecret
	cfg.PollInterval = *interval
	cfg.Migrate = true
	cfg.LogLevel = *logLevel
	if err := cfg.Finish(); err != nil {
		return err
	}
	a, err := app.New(ctx, cfg, log, app.Options{AutoMigrate: true})
	if err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	runErr := make(chan error, 1)
	go func() { runErr <- a.Run(runCtx, ln) }()

	creds, err := setup(ctx, a, cfg, emuURL)
	if err != nil {
		stop()
		<-runErr
		return err
	}
	credPath := filepath.Join(*dataDir, "demo-credentials.json")
	b, _ := json.MarshalIndent(creds, "", "  ")
	if err := os.WriteFile(credPath, append(b, '\n'), 0o600); err != nil {
		stop()
		<-runErr
		return err
	}

	tenant, workspace := emulator.ContosoTenantID, emulator.ContosoWorkspaceID
	if len(replay) > 0 {
		go replayIncidents(runCtx, log, emu, tenant, workspace, replay)
	} else {
		go trickle(runCtx, log, emu, tenant, workspace, *every)
	}

	fmt.Fprintf(stdout, `
Clarion demo is running.

  Clarion      %s
  Sign in as   %s
  Password     %s
  API token    %s
  Credentials  %s
  Emulator     %s (Microsoft stand-in)
  Agent tools  %s/mcp/skills/triage (MCP, skill "triage")

Try:
  curl -s -H "Authorization: Bearer %s" %s/api/v1/alerts

Press Ctrl-C to stop.
`, creds.URL, creds.Username, creds.Password, creds.APIToken, credPath, emuURL, creds.URL, creds.APIToken, creds.URL)
	return <-runErr
}

// setup creates (or, for a data dir used before, reuses) the workspace,
// connects it through the emulator's consent and sign-in pages, and adds the
// demo monitor.
func setup(ctx context.Context, a *app.App, cfg config.Config, emuURL string) (Credentials, error) {
	credPath := filepath.Join(cfg.DataDir, "demo-credentials.json")
	var creds Credentials
	if b, err := os.ReadFile(credPath); err == nil && json.Unmarshal(b, &creds) == nil && creds.WorkspaceID != "" {
		if _, err := a.Store.GetWorkspace(ctx, creds.WorkspaceID); err != nil {
			creds = Credentials{}
		}
	}
	if creds.WorkspaceID == "" {
		w, tok, err := a.CreateWorkspace(ctx, "Default")
		if err != nil {
			return creds, err
		}
		creds = Credentials{APIToken: tok, Workspace: w.Name, WorkspaceID: w.ID}
	}
	creds.URL = cfg.PublicURL
	creds.EmulatorURL = emuURL
	if err := signInAccount(ctx, a, &creds); err != nil {
		return creds, err
	}

	if err := Connect(ctx, cfg.PublicURL, creds.APIToken, ""); err != nil {
		return creds, fmt.Errorf("demo: connect through the emulator: %w", err)
	}
	ms, err := a.Integration.ListMonitors(ctx, creds.WorkspaceID)
	if err != nil {
		return creds, err
	}
	if len(ms) == 0 {
		name, source, wsid, wsname := "Microsoft Sentinel", "siem", emulator.ContosoWorkspaceID, emulator.ContosoWorkspaceName
		if _, err := a.Integration.CreateMonitor(ctx, creds.WorkspaceID, integration.MonitorInput{
			Name: &name, Source: &source, SentinelWorkspaceID: &wsid, SentinelWorkspaceName: &wsname,
		}); err != nil {
			return creds, fmt.Errorf("demo: create monitor: %w", err)
		}
	}
	// The agent tools: skill "triage" with both Sentinel toolsets, served at
	// /mcp/skills/triage (kept as it is when it exists).
	var te *tools.Error
	if _, err := a.Tools.CreateSkill(ctx, creds.WorkspaceID, "triage", "Triage Microsoft Sentinel and Defender XDR incidents",
		[]string{tools.ToolsetTriage, tools.ToolsetDataLake}); err != nil && !(errors.As(err, &te) && te.Code == tools.CodeSkillExists) {
		return creds, fmt.Errorf("demo: create skill: %w", err)
	}
	return creds, nil
}

// signInAccount makes sure the demo admin can sign in to the web UI: a
// random password the first time, kept in the credentials file after.
func signInAccount(ctx context.Context, a *app.App, creds *Credentials) error {
	u, err := a.Store.GetUserByEmail(ctx, DemoUsername)
	switch {
	case errors.Is(err, store.ErrNotFound):
		creds.Username, creds.Password = DemoUsername, auth.NewPassword()
		if _, err := a.Auth.CreateUser(ctx, creds.WorkspaceID, creds.Username, creds.Password); err != nil {
			return fmt.Errorf("demo: create the admin account: %w", err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("demo: admin account: %w", err)
	}
	if u.WorkspaceID == creds.WorkspaceID && creds.Username == DemoUsername && creds.Password != "" {
		return nil
	}
	if u.WorkspaceID != creds.WorkspaceID {
		return fmt.Errorf("demo: %s belongs to another workspace of this data dir; use a new --data-dir", DemoUsername)
	}
	// The account exists but its password was not kept: set a new one.
	creds.Username, creds.Password = DemoUsername, auth.NewPassword()
	if err := a.Auth.SetPassword(ctx, u.ID, creds.Password); err != nil {
		return fmt.Errorf("demo: reset the admin password: %w", err)
	}
	return nil
}

// Connect drives the browser side of connecting a Clarion workspace —
// Clarion's connect URL, the emulator's consent page, its sign-in page, the
// callback — with the workspace's API token on Clarion's requests only.
// username picks the account on the sign-in page ("" = the first).
func Connect(ctx context.Context, clarionURL, apiToken, username string) error {
	status, body, err := ConnectWith(ctx, clarionURL, apiToken, emulator.BrowseOptions{Username: username})
	if err != nil {
		return err
	}
	if status != http.StatusOK || !strings.Contains(body, `data-ok="true"`) {
		return fmt.Errorf("connect ended with HTTP %d: %s", status, strings.TrimSpace(stripTags(body)))
	}
	return nil
}

// ConnectWith runs the connect flow with the given browser options and
// returns the final page's status and body.
func ConnectWith(ctx context.Context, clarionURL, apiToken string, opts emulator.BrowseOptions) (int, string, error) {
	base := &http.Client{Timeout: 30 * time.Second, Transport: &bearerFor{host: hostOf(clarionURL), token: apiToken, next: http.DefaultTransport}}
	b := emulator.NewBrowser(base)
	resp, err := b.ClickThrough(ctx, clarionURL+"/integrations/sentinel/connect", opts)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(body), nil
}

// bearerFor adds the API token to requests for Clarion's host only: the
// token must never reach another host (the emulator stands for Microsoft).
type bearerFor struct {
	host, token string
	next        http.RoundTripper
}

func (b *bearerFor) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host == b.host {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+b.token)
	}
	return b.next.RoundTrip(r)
}

func hostOf(u string) string {
	u = strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "https://")
	host, _, _ := strings.Cut(u, "/")
	return host
}

func stripTags(s string) string {
	var out strings.Builder
	in := false
	for _, r := range s {
		switch {
		case r == '<':
			in = true
		case r == '>':
			in = false
			out.WriteByte(' ')
		case !in:
			out.WriteRune(r)
		}
	}
	return strings.Join(strings.Fields(out.String()), " ")
}

// timeColumns are the SecurityIncident columns shifted on replay.
var timeColumns = []string{"TimeGenerated", "CreatedTime", "LastModifiedTime", "FirstModifiedTime", "FirstActivityTime", "LastActivityTime", "ClosedTime"}

// Shift returns rows replayed as new incidents: in the order of their
// creation times, the first created at start and each next one spacing
// later, every time column of a row shifted by that row's own offset.
func Shift(rows []emulator.Row, start time.Time, spacing time.Duration) []emulator.Row {
	type item struct {
		row     emulator.Row
		created time.Time
	}
	items := make([]item, 0, len(rows))
	for _, r := range rows {
		c, _ := timeValue(r["CreatedTime"])
		items = append(items, item{r, c})
	}
	sort.SliceStable(items, func(i, j int) bool { return items[i].created.Before(items[j].created) })
	out := make([]emulator.Row, 0, len(items))
	for i, it := range items {
		newCreated := start.Add(time.Duration(i) * spacing)
		delta := newCreated.Sub(it.created)
		r := make(emulator.Row, len(it.row))
		for k, v := range it.row {
			r[k] = v
		}
		for _, col := range timeColumns {
			t, err := timeValue(r[col])
			if err != nil || t.IsZero() {
				continue
			}
			if it.created.IsZero() {
				t = newCreated
			} else {
				t = t.Add(delta)
			}
			r[col] = t.UTC().Format("2006-01-02T15:04:05.0000000Z")
		}
		r["CreatedTime"] = newCreated.UTC().Format("2006-01-02T15:04:05.0000000Z")
		delete(r, "TenantId") // the emulator fills the tenant it holds the row in
		out = append(out, r)
	}
	return out
}

// replayIncidents adds the given incidents as new ones, a few at a time,
// visible at once.
func replayIncidents(ctx context.Context, log *slog.Logger, emu *emulator.Emulator, tenant, workspace string, rows []emulator.Row) {
	shifted := Shift(rows, time.Now().UTC(), 10*time.Millisecond)
	const batch = 10
	for i := 0; i < len(shifted); i += batch {
		end := min(i+batch, len(shifted))
		if _, err := emu.AddIncidents(tenant, workspace, shifted[i:end], time.Now()); err != nil {
			log.Error("demo: replay incidents", "err", err)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
	log.Info("demo: replayed incidents", "count", len(shifted))
}

// trickle keeps built-in incidents arriving: a dozen at start, then one
// every period.
func trickle(ctx context.Context, log *slog.Logger, emu *emulator.Emulator, tenant, workspace string, every time.Duration) {
	if _, err := emulator.SeedDemoIncidents(emu, tenant, workspace, time.Now().UTC()); err != nil {
		log.Error("demo: seed incidents", "err", err)
	}
	// A few new ones at once, so the first poll already has something to show.
	for n := range 3 {
		emu.AddIncident(tenant, workspace, emulator.DemoIncident(tenant, 2000+n, time.Now().UTC()), time.Now())
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for n := 2003; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		emu.AddIncident(tenant, workspace, emulator.DemoIncident(tenant, n, time.Now().UTC()), time.Now())
	}
}

// timeValue reads a time column as the loaders hold it: a time.Time, or a
// string in one of Sentinel's formats.
func timeValue(v any) (time.Time, error) {
	switch t := v.(type) {
	case time.Time:
		return t, nil
	case nil:
		return time.Time{}, nil
	case string:
		return sentinel.ParseTime(t)
	}
	return sentinel.ParseTime(fmt.Sprint(v))
}
