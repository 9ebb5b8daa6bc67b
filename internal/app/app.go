// Package app wires Clarion's parts together — store, secrets, Entra
// connection, Sentinel client, monitor engine, integration service, HTTP
// API, web UI — for `clarion serve` and `clarion demo`, and runs them with an
// orderly shutdown: HTTP server first, then the monitors, then the store.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/clarion/sentinel/internal/api"
	"github.com/clarion/sentinel/internal/auth"
	"github.com/clarion/sentinel/internal/config"
	"github.com/clarion/sentinel/internal/connection"
	"github.com/clarion/sentinel/internal/entra"
	"github.com/clarion/sentinel/internal/integration"
	"github.com/clarion/sentinel/internal/monitor"
	"github.com/clarion/sentinel/internal/secrets"
	"github.com/clarion/sentinel/internal/sentinel"
	"github.com/clarion/sentinel/internal/store"
	"github.com/clarion/sentinel/internal/tools"
	"github.com/clarion/sentinel/internal/web"
)

// Options are the parts tests and the demo may replace.
type Options struct {
	Now        func() time.Time
	HTTPClient *http.Client // for calls to Microsoft
	Owner      string       // lease owner id of this replica (default random)
	// AutoMigrate applies pending migrations at start (demo, tests).
	AutoMigrate bool
}

// App is one running Clarion replica.
type App struct {
	Config      config.Config
	Log         *slog.Logger
	Store       store.Store
	Connections *connection.Service
	Sentinel    *sentinel.Client
	Engine      *monitor.Engine
	Integration *integration.Service
	API         *api.API
	Auth        *auth.Service
	Web         *web.Handler
	Tools       *tools.Service
	mux         *http.ServeMux
}

// CallbackPath is the OAuth redirect path registered for the Clarion
// Sentinel app (both admin consent and sign-in land here).
const CallbackPath = "/integrations/sentinel/callback"

// New builds the parts from cfg. cfg must have passed Finish.
func New(ctx context.Context, cfg config.Config, log *slog.Logger, opts Options) (*App, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Owner == "" {
		opts.Owner = cfg.ReplicaID
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 2 * time.Minute}
	}
	st, err := store.Open(ctx, cfg.DatabaseURL, store.Options{AutoMigrate: cfg.Migrate || opts.AutoMigrate, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("app: open store: %w", err)
	}
	key, err := loadKey(cfg)
	if err != nil {
		st.Close()
		return nil, err
	}
	box, err := secrets.NewBox(key)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("app: encryption key: %w", err)
	}
	ec := &entra.Client{Authority: cfg.EntraAuthority, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret,
		RedirectURI: cfg.PublicURL + CallbackPath, HTTP: opts.HTTPClient, Now: opts.Now}
	// One replica id for the poll leases and the refresh leases, so that a
	// graceful shutdown (store.ReleaseLeases) hands both back.
	conns := connection.New(connection.Config{Store: st, Box: box, Entra: ec, Now: opts.Now, Logger: log, Owner: opts.Owner})
	sc := sentinel.New(sentinel.Config{BaseURL: cfg.SentinelMCPURL, HTTP: opts.HTTPClient, Logger: log})
	up := &Upstream{Connections: conns, Client: sc}
	eng := monitor.New(monitor.Config{Owner: opts.Owner, Interval: cfg.PollInterval, Lookback: cfg.Lookback, PageSize: cfg.PageSize,
		PortalHosts: cfg.PortalHosts, Now: opts.Now, Logger: log}, st, up)
	svc := &integration.Service{Store: st, Connections: conns, Lake: up, Prober: up, Engine: eng, Now: opts.Now}
	a := &App{Config: cfg, Log: log, Store: st, Connections: conns, Sentinel: sc, Engine: eng, Integration: svc,
		API: &api.API{Store: st, Integration: svc, Connections: conns, Logger: log, SecureCookies: len(cfg.PublicURL) > 5 && cfg.PublicURL[:5] == "https"}}
	a.mux = http.NewServeMux()
	a.API.Register(a.mux)
	// Agent tools: skills, /mcp/skills/{skill}, /api/v1/tools, /api/v1/audit.
	a.Tools = &tools.Service{Store: st, Tokens: conns, Upstream: sc, Logger: log, Now: opts.Now}
	tools.NewHandler(a.Tools).Register(a.mux)
	a.Auth = &auth.Service{Store: st, Now: opts.Now}
	a.Web, err = web.New(web.Config{Auth: a.Auth, Integration: svc, Connections: conns, Connector: a.API, Tools: a.Tools, Logger: log,
		SecureCookies: a.API.SecureCookies, FormActions: []string{cfg.EntraAuthority}, Now: opts.Now})
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("app: web ui: %w", err)
	}
	a.Web.Register(a.mux)
	return a, nil
}

func loadKey(cfg config.Config) ([]byte, error) {
	if cfg.EncryptionKey != "" {
		k, err := secrets.ParseKey(cfg.EncryptionKey)
		if err != nil {
			return nil, fmt.Errorf("app: encryption-key: %w", err)
		}
		return k, nil
	}
	k, err := secrets.LoadOrCreateKey(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("app: encryption key in data dir: %w", err)
	}
	return k, nil
}

// Mux is the HTTP mux, for the parts that add routes (web UI, tools).
func (a *App) Mux() *http.ServeMux { return a.mux }

// Handler is Clarion's whole HTTP surface.
func (a *App) Handler() http.Handler { return logRequests(a.Log, a.mux) }

// Run serves HTTP on ln and runs the monitor engine until ctx ends, then
// shuts down in order: HTTP server, monitors, store.
func (a *App) Run(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 0 /* alert streams */, IdleTimeout: 2 * time.Minute}
	srv.RegisterOnShutdown(a.Web.Shutdown) // open alert streams end, so Shutdown need not wait for them
	engCtx, stopEngine := context.WithCancel(context.WithoutCancel(ctx))
	engDone := make(chan error, 1)
	go func() { engDone <- a.Engine.Run(engCtx) }()
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Serve(ln) }()

	var err error
	select {
	case <-ctx.Done():
	case err = <-srvErr:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if e := srv.Shutdown(sctx); e != nil && !errors.Is(e, http.ErrServerClosed) {
		a.Log.Warn("http shutdown", "err", e)
	}
	stopEngine()
	<-engDone
	// The tool calls are answered; their audit records are written now.
	if e := a.Tools.Close(); e != nil {
		a.Log.Warn("close tools", "err", e)
	}
	// Ends the MCP sessions held with Microsoft (polls and tools are done).
	if e := a.Sentinel.Close(); e != nil {
		a.Log.Warn("close sentinel client", "err", e)
	}
	if e := a.Store.Close(); e != nil {
		a.Log.Warn("close store", "err", e)
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// Close releases the store when Run was never called, after writing the
// audit records of the tool calls made (through Handler) until then.
func (a *App) Close() error {
	return errors.Join(a.Tools.Close(), a.Store.Close())
}

// CreateWorkspace makes a Clarion workspace with a first API token, which is
// returned once (only its hash is stored).
func (a *App) CreateWorkspace(ctx context.Context, name string) (store.Workspace, string, error) {
	now := time.Now().UTC()
	w := store.Workspace{ID: store.NewID(), Name: name, CreatedAt: now}
	if err := a.Store.CreateWorkspace(ctx, w); err != nil {
		return store.Workspace{}, "", fmt.Errorf("app: create workspace: %w", err)
	}
	tok, err := a.CreateToken(ctx, w.ID, "default")
	return w, tok, err
}

// CreateToken makes a new API token of a workspace.
func (a *App) CreateToken(ctx context.Context, workspaceID, name string) (string, error) {
	tok := api.NewToken()
	t := store.APIToken{ID: store.NewID(), WorkspaceID: workspaceID, Name: name, Hash: api.HashToken(tok), CreatedAt: time.Now().UTC()}
	if err := a.Store.CreateAPIToken(ctx, t); err != nil {
		return "", fmt.Errorf("app: create token: %w", err)
	}
	return tok, nil
}

// Upstream adapts the connection service and the Sentinel MCP client to
// what the monitor engine and the integration service need: each call runs
// under the calling Clarion workspace's own connection.
type Upstream struct {
	Connections *connection.Service
	Client      *sentinel.Client
}

func (u *Upstream) token(ctx context.Context, workspaceID string) (sentinel.Token, error) {
	t, err := u.Connections.AccessToken(ctx, workspaceID, connection.SentinelPlatform)
	if err != nil {
		return sentinel.Token{}, err
	}
	return sentinel.Token{Value: t.Value, TenantID: t.TenantID}, nil
}

// QueryIncidents runs a poll query for a monitor.
func (u *Upstream) QueryIncidents(ctx context.Context, conn store.Connection, m store.Monitor, kql string) (monitor.Page, error) {
	t, err := u.Connections.AccessTokenWith(ctx, conn, connection.SentinelPlatform)
	if err != nil {
		return monitor.Page{}, err
	}
	tok := sentinel.Token{Value: t.Value, TenantID: t.TenantID}
	// QueryIncidents sets each incident's TenantID to the connection's
	// tenant: the row's TenantId column is the Log Analytics workspace, not
	// the Entra tenant (deep links carry the tenant).
	p, err := u.Client.QueryIncidents(ctx, tok, m.SentinelWorkspaceID, kql)
	if err != nil {
		return monitor.Page{}, err
	}
	return monitor.Page{Incidents: p.Incidents, Rows: p.Rows, Invalid: p.Invalid}, nil
}

// NewestIncident finds the creation time of the newest incident of the
// monitor's Sentinel workspace (for the diagnosis).
func (u *Upstream) NewestIncident(ctx context.Context, workspaceID string, m store.Monitor) (time.Time, bool, error) {
	tok, err := u.token(ctx, workspaceID)
	if err != nil {
		return time.Time{}, false, err
	}
	t, err := u.Client.QueryLake(ctx, tok, m.SentinelWorkspaceID, "SecurityIncident\n| order by CreatedTime desc\n| take 1\n| project CreatedTime")
	if err != nil {
		return time.Time{}, false, err
	}
	if len(t.Rows) == 0 || len(t.Rows[0]) == 0 {
		return time.Time{}, false, nil
	}
	created, err := sentinel.ParseTime(fmt.Sprint(t.Rows[0][0]))
	if err != nil {
		return time.Time{}, false, fmt.Errorf("app: newest incident: %w", err)
	}
	return created, !created.IsZero(), nil
}

// ListWorkspaces lists the data-lake workspaces of the workspace's tenant.
func (u *Upstream) ListWorkspaces(ctx context.Context, workspaceID string) ([]sentinel.Workspace, error) {
	tok, err := u.token(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	return u.Client.ListWorkspaces(ctx, tok)
}

// logRequests logs each request's method, path, status and duration — never
// query strings (they carry OAuth codes and states) nor headers.
func logRequests(log *slog.Logger, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rw := &statusWriter{ResponseWriter: w, status: 200}
		h.ServeHTTP(rw, r)
		log.Debug("http", "method", r.Method, "path", r.URL.Path, "status", rw.status, "duration_ms", time.Since(start).Milliseconds())
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(c int) { s.status = c; s.ResponseWriter.WriteHeader(c) }

// Flush keeps streaming responses working through the wrapper.
func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the real writer.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// NewLogger builds the process logger (text or JSON, at level).
func NewLogger(w io.Writer, level string, asJSON bool) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	if asJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
