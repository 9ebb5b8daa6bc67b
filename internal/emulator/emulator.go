package emulator

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Resource application ids and the delegated permissions Clarion asks for
// (MICROSOFT.md §2).
const (
	// SentinelPlatformResource is Sentinel Platform Services, the audience of
	// data lake (data exploration MCP) access tokens.
	SentinelPlatformResource = "4500ebfb-89b6-4b14-a480-7f749797bfcd"
	// SentinelPlatformPermission is its delegated permission.
	SentinelPlatformPermission = "SentinelPlatform.DelegatedAccess"
	// DefenderMCPResource is Microsoft Defender MCP, the audience of triage
	// access tokens. Its service principal is often missing from a tenant.
	DefenderMCPResource = "7b7b3966-1961-47b5-b080-43ca5482e21c"
	// DefenderMCPPermission is its delegated permission.
	DefenderMCPPermission = "MCP.Read.All"
	// GraphResource is Microsoft Graph, the resource of sign-in-only tokens.
	GraphResource = "00000003-0000-0000-c000-000000000000"
)

// The Clarion Sentinel app as DefaultConfig registers it.
const (
	DefaultClientID     = "ad80e0c2-e54e-4eea-a420-ff58e43087b5"
	DefaultClientSecret = "cl4r1on~EmulatorSecret.NotForProduction"
	DefaultAppName      = "Clarion for Microsoft Sentinel"
)

// The seeded tenants of DefaultConfig. Contoso is the tenant Clarion
// connects to (two users, two workspaces); Fabrikam is a second tenant for
// wrong-tenant tests (one user, one workspace). Both are onboarded to the
// data lake and have the Defender MCP service principal.
const (
	ContosoTenantID   = "07980fae-f5cf-4865-a20c-94ef7d335a33"
	ContosoTenantName = "Contoso"

	ContosoAdminOID         = "c6aa32a4-e60a-47d0-a66b-81badb53414d"
	ContosoAdminUsername    = "admin@contoso.onmicrosoft.com"
	ContosoAdminDisplayName = "Adele Vance"

	ContosoAnalystOID         = "8b36f5f8-d3ab-43aa-a4f4-033da6826227"
	ContosoAnalystUsername    = "analyst@contoso.onmicrosoft.com"
	ContosoAnalystDisplayName = "Alex Wilber"

	// ContosoWorkspaceID is Contoso's first (default) Sentinel workspace.
	ContosoWorkspaceID    = "c91598d6-f3a4-4078-b4b8-b71506369dea"
	ContosoWorkspaceName  = "contoso-sentinel"
	ContosoWorkspace2ID   = "2a0979b8-5080-4144-9220-d7f6670607a0"
	ContosoWorkspace2Name = "contoso-sentinel-eu"

	FabrikamTenantID      = "cf5012ba-a5f9-4d49-a31e-c3da52df6c3e"
	FabrikamTenantName    = "Fabrikam"
	FabrikamAdminOID      = "93311b65-338c-4b10-af91-747495aa5796"
	FabrikamAdminUsername = "admin@fabrikam.onmicrosoft.com"
	FabrikamAdminName     = "Diego Siciliani"
	FabrikamWorkspaceID   = "8334ba94-8b9f-4dc5-bcc3-f0fe3289c189"
	FabrikamWorkspaceName = "fabrikam-sentinel"
)

const (
	defaultAccessTokenTTL  = time.Hour
	defaultRefreshTokenTTL = 90 * 24 * time.Hour
	authCodeTTL            = 10 * time.Minute // Entra's codes live about ten minutes
	pendingTTL             = time.Hour        // a consent or sign-in page left open
)

// Config configures an Emulator.
type Config struct {
	// ClientID and ClientSecret are the Clarion Sentinel app registered in
	// the emulator (a multi-tenant app: any seeded tenant may consent).
	ClientID, ClientSecret string
	// AppName is shown on the consent and sign-in pages.
	AppName string
	// RedirectURIs are the app's registered redirect URIs. Empty: any
	// http://127.0.0.1, http://[::1] or http://localhost URI (any port) is
	// accepted, as Entra accepts loopback URIs for any port.
	RedirectURIs []string
	// Tenants are the seeded Entra tenants.
	Tenants []Tenant
	// Now is the clock of tokens, codes, visibility delays, ago()/now() in
	// KQL and the Stats timestamps. Default time.Now.
	Now func() time.Time
	// AccessTokenTTL and RefreshTokenTTL default to 1 hour and 90 days
	// (refresh tokens expire after 90 days without use, as in Entra).
	AccessTokenTTL, RefreshTokenTTL time.Duration
	// SigningKey signs tokens (RS256). Default: a new 2048-bit key.
	SigningKey *rsa.PrivateKey
	// Logger receives a debug line per request (method, path, status) and
	// an info line per fault, revocation and state change. Default: discard.
	Logger *slog.Logger
}

// Tenant is an Entra tenant with its Sentinel workspaces.
type Tenant struct {
	ID, Name   string
	Users      []User
	Workspaces []Workspace
	// DataLakeOnboarded: the tenant is onboarded to the Sentinel data lake;
	// otherwise list_sentinel_workspaces and query_lake fail.
	DataLakeOnboarded bool
	// DefenderMCPProvisioned: the tenant has a service principal for the
	// Defender MCP resource; otherwise consent to it and tokens for it fail
	// with AADSTS650052.
	DefenderMCPProvisioned bool
}

// User is an account of a tenant that can sign in.
type User struct {
	OID, Username, DisplayName string
}

// Workspace is a Sentinel (Log Analytics) workspace; ID is its GUID.
type Workspace struct {
	ID, Name string
}

// DefaultConfig returns the app, Contoso (two users, two workspaces,
// onboarded, Defender MCP provisioned) and Fabrikam (one user, one
// workspace), with the constants above.
func DefaultConfig() Config {
	return Config{
		ClientID:     DefaultClientID,
		ClientSecret: DefaultClientSecret,
		AppName:      DefaultAppName,
		Tenants: []Tenant{
			{
				ID:   ContosoTenantID,
				Name: ContosoTenantName,
				Users: []User{
					{OID: ContosoAdminOID, Username: ContosoAdminUsername, DisplayName: ContosoAdminDisplayName},
					{OID: ContosoAnalystOID, Username: ContosoAnalystUsername, DisplayName: ContosoAnalystDisplayName},
				},
				Workspaces: []Workspace{
					{ID: ContosoWorkspaceID, Name: ContosoWorkspaceName},
					{ID: ContosoWorkspace2ID, Name: ContosoWorkspace2Name},
				},
				DataLakeOnboarded:      true,
				DefenderMCPProvisioned: true,
			},
			{
				ID:                     FabrikamTenantID,
				Name:                   FabrikamTenantName,
				Users:                  []User{{OID: FabrikamAdminOID, Username: FabrikamAdminUsername, DisplayName: FabrikamAdminName}},
				Workspaces:             []Workspace{{ID: FabrikamWorkspaceID, Name: FabrikamWorkspaceName}},
				DataLakeOnboarded:      true,
				DefenderMCPProvisioned: true,
			},
		},
	}
}

// Emulator imitates the Microsoft endpoints Clarion calls. Create it with
// New and serve Handler; every method is safe for concurrent use.
type Emulator struct {
	cfg  Config
	now  func() time.Time
	log  *slog.Logger
	keys *signingKeys

	mu       sync.Mutex
	tenants  map[string]*tenantState
	order    []string // tenant ids in configuration order
	pending  map[string]*pendingFlow
	codes    map[string]*authCode
	refresh  map[string]*refreshToken
	families []*grantFamily
	faults   []*Fault
	faultSeq int
	stats    statsState
	rowSeq   int64

	lastLake map[string]*QueryResult // tenant → previous query_lake answer (FaultRepeatAnswer)

	mcpServers map[string]*mcpEndpoint // by path
	handler    http.Handler
}

type tenantState struct {
	Tenant
	consented  map[string]bool // resource app id → the app has admin consent for it
	workspaces map[string]*workspaceState
}

// New validates cfg, fills in defaults and builds the emulator.
func New(cfg Config) (*Emulator, error) {
	if cfg.ClientID == "" {
		return nil, errors.New("emulator: config: ClientID is required")
	}
	if cfg.ClientSecret == "" {
		return nil, errors.New("emulator: config: ClientSecret is required")
	}
	if cfg.AppName == "" {
		cfg.AppName = DefaultAppName
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.AccessTokenTTL <= 0 {
		cfg.AccessTokenTTL = defaultAccessTokenTTL
	}
	if cfg.RefreshTokenTTL <= 0 {
		cfg.RefreshTokenTTL = defaultRefreshTokenTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if len(cfg.Tenants) == 0 {
		return nil, errors.New("emulator: config: at least one tenant is required")
	}
	keys, err := newSigningKeys(cfg.SigningKey)
	if err != nil {
		return nil, fmt.Errorf("emulator: signing key: %w", err)
	}
	e := &Emulator{
		cfg:     cfg,
		now:     cfg.Now,
		log:     cfg.Logger,
		keys:    keys,
		tenants: map[string]*tenantState{},
		pending: map[string]*pendingFlow{},
		codes:   map[string]*authCode{},
		refresh: map[string]*refreshToken{},
	}
	e.stats.init()
	for i, t := range cfg.Tenants {
		t.ID = strings.ToLower(t.ID)
		if !isGUID(t.ID) {
			return nil, fmt.Errorf("emulator: config: Tenants[%d].ID %q is not a GUID", i, t.ID)
		}
		if _, dup := e.tenants[t.ID]; dup {
			return nil, fmt.Errorf("emulator: config: tenant %s is listed twice", t.ID)
		}
		ts := &tenantState{Tenant: t, consented: map[string]bool{}, workspaces: map[string]*workspaceState{}}
		ts.Users = slices.Clone(t.Users)
		ts.Workspaces = slices.Clone(t.Workspaces)
		for j, w := range ts.Workspaces {
			w.ID = strings.ToLower(w.ID)
			ts.Workspaces[j].ID = w.ID
			if !isGUID(w.ID) {
				return nil, fmt.Errorf("emulator: config: Tenants[%d].Workspaces[%d].ID %q is not a GUID", i, j, w.ID)
			}
			for _, other := range e.tenants {
				if other.workspaces[w.ID] != nil {
					return nil, fmt.Errorf("emulator: config: workspace %s belongs to two tenants", w.ID)
				}
			}
			ts.workspaces[w.ID] = newWorkspaceState(w)
		}
		for j, u := range ts.Users {
			if !isGUID(u.OID) || u.Username == "" {
				return nil, fmt.Errorf("emulator: config: Tenants[%d].Users[%d] needs a GUID OID and a Username", i, j)
			}
		}
		e.tenants[t.ID] = ts
		e.order = append(e.order, t.ID)
	}
	e.handler = e.routes()
	return e, nil
}

// Handler serves every emulated endpoint, on one host:
//
//	GET|POST /{tenant}/v2.0/adminconsent                 admin consent page
//	GET|POST /{tenant}/oauth2/v2.0/authorize             sign-in page
//	POST     /{tenant}/oauth2/v2.0/token                 token endpoint
//	GET      /{tenant}/discovery/v2.0/keys               JWKS
//	GET      /{tenant}/v2.0/.well-known/openid-configuration
//	*        /mcp/data-exploration, /mcp/triage          MCP servers (streamable HTTP)
//	*        /_emulator/...                              control API (see the package doc)
func (e *Emulator) Handler() http.Handler { return e.handler }

func (e *Emulator) routes() http.Handler {
	// Entra answers are small: they are buffered so that a truncate fault
	// can cut them.
	trunc := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			withTruncation(w, func(w http.ResponseWriter) { h(w, r) })
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{tenant}/v2.0/adminconsent", trunc(e.handleConsentPage))
	mux.HandleFunc("POST /{tenant}/v2.0/adminconsent", trunc(e.handleConsentSubmit))
	mux.HandleFunc("GET /{tenant}/oauth2/v2.0/authorize", trunc(e.handleAuthorizePage))
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/authorize", trunc(e.handleAuthorizeSubmit))
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", trunc(e.handleToken))
	mux.HandleFunc("GET /{tenant}/discovery/v2.0/keys", trunc(e.handleKeys))
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", trunc(e.handleOpenIDConfig))
	mux.HandleFunc("GET /{$}", e.handleIndex)

	e.mcpServers = map[string]*mcpEndpoint{}
	for _, ep := range []*mcpEndpoint{e.newDataExplorationEndpoint(), e.newTriageEndpoint()} {
		e.mcpServers[ep.path] = ep
		mux.Handle(ep.path, ep)
		mux.HandleFunc("GET /.well-known/oauth-protected-resource"+ep.path, ep.serveResourceMetadata)
	}
	control := e.controlRoutes()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		if strings.HasPrefix(r.URL.Path, controlPrefix) {
			control.ServeHTTP(rec, r)
		} else {
			mux.ServeHTTP(rec, r)
		}
		// The path only: query strings carry codes and states.
		e.log.Debug("emulator: request", "method", r.Method, "path", r.URL.Path, "status", rec.status, "duration", time.Since(start))
	})
}

// statusRecorder remembers the status of an answer for the request log.
type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

// Flush lets the MCP event streams through.
func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap serves http.ResponseController.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (e *Emulator) handleIndex(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "Microsoft emulator for %s (local stand-in; not Microsoft).\n\n"+
		"Entra authority: %s\nSentinel MCP base: %s/mcp\nControl API: %s%s\n",
		e.cfg.AppName, baseURL(r), baseURL(r), baseURL(r), controlPrefix)
}

// baseURL is the scheme and host the request came in on: the emulator's
// stand-in for https://login.microsoftonline.com and
// https://sentinel.microsoft.com.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// tenant returns the state of a configured tenant (nil when unknown).
// Callers hold e.mu.
func (e *Emulator) tenant(id string) *tenantState {
	return e.tenants[strings.ToLower(id)]
}

// TenantIDs lists the configured tenants in configuration order.
func (e *Emulator) TenantIDs() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.order)
}

// SetDataLakeOnboarded changes whether a tenant is onboarded to the data lake.
func (e *Emulator) SetDataLakeOnboarded(tenantID string, onboarded bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.tenant(tenantID)
	if t == nil {
		return fmt.Errorf("emulator: unknown tenant %q", tenantID)
	}
	t.DataLakeOnboarded = onboarded
	e.log.Info("emulator: data lake onboarding changed", "tenant_id", t.ID, "onboarded", onboarded)
	return nil
}

// SetDefenderMCPProvisioned changes whether a tenant has the Defender MCP
// service principal.
func (e *Emulator) SetDefenderMCPProvisioned(tenantID string, provisioned bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.tenant(tenantID)
	if t == nil {
		return fmt.Errorf("emulator: unknown tenant %q", tenantID)
	}
	t.DefenderMCPProvisioned = provisioned
	e.log.Info("emulator: Defender MCP service principal changed", "tenant_id", t.ID, "provisioned", provisioned)
	return nil
}

// Consented reports the resources a tenant has granted the app consent for.
func (e *Emulator) Consented(tenantID string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.tenant(tenantID)
	if t == nil {
		return nil
	}
	var out []string
	for r, ok := range t.consented {
		if ok {
			out = append(out, r)
		}
	}
	slices.Sort(out)
	return out
}

func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}
