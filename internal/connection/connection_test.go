package connection_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clarion/sentinel/internal/connection"
	"github.com/clarion/sentinel/internal/emulator"
	"github.com/clarion/sentinel/internal/entra"
	"github.com/clarion/sentinel/internal/secrets"
	"github.com/clarion/sentinel/internal/store"
)

const (
	contoso  = emulator.ContosoTenantID
	fabrikam = emulator.FabrikamTenantID
	ws1      = "ws-1"
)

// clock is the injected time of the emulator and of Clarion.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// syncBuffer collects log output from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// hookTransport runs a hook before the next token request (once).
type hookTransport struct {
	base http.RoundTripper
	hook atomic.Pointer[func()]
}

func (h *hookTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/oauth2/v2.0/token") {
		if f := h.hook.Swap(nil); f != nil {
			(*f)()
		}
	}
	return h.base.RoundTrip(r)
}

type env struct {
	t      *testing.T
	emu    *emulator.Emulator
	emuSrv *httptest.Server
	app    *httptest.Server // Clarion's callback
	store  store.Store
	dbPath string
	box    *secrets.Box
	clock  *clock
	svc    *connection.Service
	logs   *syncBuffer
	hook   *hookTransport
	entra  *entra.Client
}

type options struct {
	refreshTimeout time.Duration
	owner          string // replica id (default: a random one per Service)
}

// setup starts the emulator, a SQLite store in t.TempDir(), Clarion's
// callback endpoint and the Service, all on loopback, with one Clarion
// workspace ws1.
func setup(t *testing.T, opts ...options) *env {
	t.Helper()
	var o options
	if len(opts) > 0 {
		o = opts[0]
	}
	ctx := context.Background()
	clk := &clock{t: time.Now().UTC().Truncate(time.Second)}
	cfg := emulator.DefaultConfig()
	cfg.Now = clk.Now
	emu, err := emulator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	emuSrv := httptest.NewServer(emu.Handler())
	t.Cleanup(emuSrv.Close)

	dbPath := filepath.Join(t.TempDir(), "clarion.db")
	st, err := store.Open(ctx, "sqlite:"+dbPath, store.Options{AutoMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.CreateWorkspace(ctx, store.Workspace{ID: ws1, Name: "SOC", CreatedAt: clk.Now()}); err != nil {
		t.Fatal(err)
	}
	box, err := secrets.NewBox(secrets.GenerateKey())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, emu: emu, emuSrv: emuSrv, store: st, dbPath: dbPath, box: box, clock: clk, logs: &syncBuffer{},
		hook: &hookTransport{base: http.DefaultTransport}}
	e.app = httptest.NewServer(http.HandlerFunc(e.callback))
	t.Cleanup(e.app.Close)
	e.entra = &entra.Client{Authority: emuSrv.URL, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret,
		RedirectURI: e.app.URL + "/callback", HTTP: &http.Client{Transport: e.hook, Timeout: 10 * time.Second}, Now: clk.Now}
	e.svc = e.newService(o)
	return e
}

// newService is one Clarion replica over the shared store and emulator.
func (e *env) newService(o options) *connection.Service {
	return connection.New(connection.Config{Store: e.store, Box: e.box, Entra: e.entra, Now: e.clock.Now,
		Logger:         slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		RefreshTimeout: o.refreshTimeout, Owner: o.owner})
}

// callbackAnswer is what Clarion's test callback endpoint answers.
type callbackAnswer struct {
	Connected   bool   `json:"connected"`
	Code        string `json:"code"`
	Message     string `json:"message"`
	WorkspaceID string `json:"workspace_id"`
	ReturnTo    string `json:"return_to"`
}

// callback is a thin stand-in for the API's callback handler.
func (e *env) callback(w http.ResponseWriter, r *http.Request) {
	res, err := e.svc.Callback(r.Context(), r.URL.Query())
	var ce *connection.ConnectError
	switch {
	case err == nil && res.Next != "":
		http.Redirect(w, r, res.Next, http.StatusFound)
		return
	case errors.As(err, &ce):
		writeJSON(w, http.StatusBadRequest, callbackAnswer{Code: ce.Code, Message: ce.Message, WorkspaceID: res.WorkspaceID, ReturnTo: res.ReturnTo})
	case err != nil:
		writeJSON(w, http.StatusInternalServerError, callbackAnswer{Code: "internal", Message: err.Error()})
	default:
		writeJSON(w, http.StatusOK, callbackAnswer{Connected: res.Connected, WorkspaceID: res.WorkspaceID, ReturnTo: res.ReturnTo})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// connect runs the whole flow in the emulator's browser: Clarion →
// consent page → Clarion → sign-in page → Clarion.
func (e *env) connect(opts emulator.BrowseOptions) callbackAnswer {
	e.t.Helper()
	ctx := context.Background()
	start, err := e.svc.BeginConnect(ctx, ws1, "/integrations/sentinel")
	if err != nil {
		e.t.Fatal(err)
	}
	resp, err := emulator.NewBrowser(nil).ClickThrough(ctx, start, opts)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var a callbackAnswer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		e.t.Fatalf("callback answer %d: %v", resp.StatusCode, err)
	}
	if a.Code == "internal" {
		e.t.Fatalf("callback failed: %s", a.Message)
	}
	return a
}

func (e *env) mustConnect() store.Connection {
	e.t.Helper()
	if a := e.connect(emulator.BrowseOptions{Username: emulator.ContosoAdminUsername}); !a.Connected {
		e.t.Fatalf("not connected: %+v", a)
	}
	c, err := e.svc.Get(context.Background(), ws1)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *env) conn() store.Connection {
	e.t.Helper()
	c, err := e.store.GetConnection(context.Background(), ws1)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *env) noConnection() {
	e.t.Helper()
	if _, err := e.svc.Get(context.Background(), ws1); !errors.Is(err, connection.ErrNotConnected) {
		e.t.Fatalf("a connection is stored (%v)", err)
	}
}

// refreshes counts refresh-token grants the emulator saw for Contoso.
func (e *env) refreshes() int {
	return e.emu.Stats().Tenant(contoso).Grants["refresh_token"].Count
}

// tokenCalls counts every token-endpoint request for Contoso.
func (e *env) tokenCalls() int {
	return e.emu.Stats().Tenant(contoso).Endpoints[emulator.EndpointToken].Count
}

func (e *env) addMonitor(name string) string {
	e.t.Helper()
	id := store.NewID()
	err := e.store.CreateMonitor(context.Background(), store.Monitor{ID: id, WorkspaceID: ws1, Name: name,
		SourceKind: store.SourceSIEM, SentinelWorkspaceID: emulator.ContosoWorkspaceID, Enabled: true,
		CreatedAt: e.clock.Now(), UpdatedAt: e.clock.Now()})
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

func (e *env) refreshToken(c store.Connection) string {
	e.t.Helper()
	rt, err := e.box.Open(c.RefreshTokenEnc, []byte(c.WorkspaceID))
	if err != nil {
		e.t.Fatal(err)
	}
	return string(rt)
}

// dbBytes is the SQLite database as it is on disk (main file and WAL).
func (e *env) dbBytes() []byte {
	e.t.Helper()
	var all []byte
	for _, suffix := range []string{"", "-wal", "-journal", "-shm"} {
		b, err := os.ReadFile(e.dbPath + suffix)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			e.t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

func TestConnectFlow(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	a := e.connect(emulator.BrowseOptions{Username: emulator.ContosoAdminUsername})
	if !a.Connected || a.WorkspaceID != ws1 || a.ReturnTo != "/integrations/sentinel" {
		t.Fatalf("answer %+v", a)
	}
	c := e.conn()
	if c.TenantID != contoso || c.AccountOID != emulator.ContosoAdminOID || c.AccountUsername != emulator.ContosoAdminUsername ||
		c.State != store.StateConnected || c.StateCode != "" || !c.ConnectedAt.Equal(e.clock.Now()) || len(c.Scopes) == 0 {
		t.Fatalf("connection %+v", c)
	}
	if got := e.emu.Consented(contoso); len(got) < 2 {
		t.Fatalf("consented resources %v", got)
	}

	rt := e.refreshToken(c)
	var tokens []string
	for _, res := range []string{connection.SentinelPlatform, connection.DefenderMCP} {
		tok, err := e.svc.AccessToken(ctx, ws1, res)
		if err != nil {
			t.Fatalf("%s: %v", res, err)
		}
		if tok.TenantID != contoso || tok.Value == "" || !tok.ExpiresAt.After(e.clock.Now()) {
			t.Fatalf("%s token %v", res, tok)
		}
		tokens = append(tokens, tok.Value)
	}
	rotated := e.refreshToken(e.conn())

	// Encrypted at rest: neither the first nor the rotated refresh token is
	// anywhere in the database files in clear.
	db := e.dbBytes()
	if len(db) == 0 {
		t.Fatal("empty database")
	}
	for _, secret := range []string{rt, rotated} {
		if bytes.Contains(db, []byte(secret)) || bytes.Contains(db, []byte(secret[:40])) {
			t.Fatal("a refresh token is stored in clear")
		}
	}
	// Nor in the logs, with the access tokens and the client secret.
	logs := e.logs.String()
	if !strings.Contains(logs, "sentinel connected") {
		t.Fatalf("connect not logged: %s", logs)
	}
	for _, secret := range append(tokens, rt, rotated, emulator.DefaultClientSecret) {
		if strings.Contains(logs, secret) {
			t.Fatal("a secret is in the logs")
		}
	}

	st, err := e.svc.Status(ctx, ws1)
	if err != nil || st.State != store.StateConnected || !st.Connected() || st.TenantID != contoso ||
		st.AccountUsername != emulator.ContosoAdminUsername || !strings.Contains(st.Sentence, contoso) {
		t.Fatalf("status %+v %v", st, err)
	}
}

func TestConnectFailuresStoreNothing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		fault  *emulator.Fault
		opts   emulator.BrowseOptions
		code   string
		says   []string
		before func(e *env)
	}{
		{name: "P12a/consent 650052 Defender MCP not provisioned",
			fault: &emulator.Fault{Kind: emulator.FaultDefenderNotProvisioned, Target: emulator.EndpointConsent},
			code:  "service_not_enabled",
			says:  []string{"AADSTS650052", "az ad sp create --id 7b7b3966-1961-47b5-b080-43ca5482e21c", "Azure Cloud Shell"}},
		{name: "P12a/consent invalid_client AADSTS650052 description",
			fault: &emulator.Fault{Kind: emulator.FaultAADSTS, Target: emulator.EndpointConsent, AADSTS: 650052, Error: "invalid_client"},
			code:  "service_not_enabled", says: []string{"az ad sp create"}},
		{name: "P12b/admin declined", opts: emulator.BrowseOptions{Cancel: true},
			code: "consent_declined", says: []string{"declined"}},
		{name: "P12c/sign-in from another tenant",
			fault: &emulator.Fault{Kind: emulator.FaultWrongTenantSignIn, Target: emulator.EndpointAuthorize},
			code:  "wrong_tenant", says: []string{"The sign-in used a different tenant than the one that granted consent"}},
		{name: "no refresh token",
			fault: &emulator.Fault{Kind: emulator.FaultNoRefreshToken, Target: emulator.EndpointToken, Count: 1},
			code:  "no_refresh_token", says: []string{"Microsoft did not return a refresh token", "offline_access"}},
		{name: "consent required 90094",
			fault: &emulator.Fault{Kind: emulator.FaultAADSTS, Target: emulator.EndpointConsent, AADSTS: 90094},
			code:  "consent_required", says: []string{"admin consent"}},
		{name: "sign-in 50020 user not in tenant",
			fault: &emulator.Fault{Kind: emulator.FaultAADSTS, Target: emulator.EndpointAuthorize, AADSTS: 50020},
			code:  "wrong_tenant", says: []string{"different tenant"}},
		{name: "token endpoint down during redeem",
			fault: &emulator.Fault{Kind: emulator.FaultServerError, Target: emulator.EndpointToken, GrantType: "authorization_code"},
			code:  "microsoft_unavailable", says: []string{"temporarily unavailable"}},
		{name: "code rejected",
			fault: &emulator.Fault{Kind: emulator.FaultAADSTS, Target: emulator.EndpointToken, GrantType: "authorization_code", AADSTS: 70000},
			code:  "signin_failed", says: []string{"AADSTS70000", "Nothing was connected"}},
	}
	messages := map[string]string{}
	var mu sync.Mutex
	t.Run("cases", func(t *testing.T) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				e := setup(t)
				if tc.fault != nil {
					e.emu.SetFault(*tc.fault)
				}
				a := e.connect(tc.opts)
				if a.Connected || a.Code != tc.code {
					t.Fatalf("answer %+v, want code %s", a, tc.code)
				}
				if a.WorkspaceID != ws1 || a.ReturnTo != "/integrations/sentinel" {
					t.Fatalf("answer does not say where to go back: %+v", a)
				}
				for _, w := range tc.says {
					if !strings.Contains(a.Message, w) {
						t.Errorf("message %q lacks %q", a.Message, w)
					}
				}
				e.noConnection()
				mu.Lock()
				messages[tc.code] = a.Message
				mu.Unlock()
			})
		}
	})
	// P12: each failure has its own actionable message.
	for _, code := range []string{"service_not_enabled", "consent_declined", "wrong_tenant", "no_refresh_token"} {
		for other, msg := range messages {
			if other != code && msg == messages[code] {
				t.Errorf("%s and %s share the message %q", code, other, msg)
			}
		}
	}
}

func TestCallbackState(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	consentAnswer := func(state string) url.Values {
		return url.Values{"admin_consent": {"True"}, "tenant": {contoso}, "state": {state}}
	}
	stateOf := func(t *testing.T, u string) string {
		p, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		return p.Query().Get("state")
	}
	tests := []struct {
		name string
		run  func(t *testing.T, e *env) error
		code string // default invalid_state
	}{
		{"missing state", func(t *testing.T, e *env) error {
			_, err := e.svc.Callback(ctx, url.Values{"admin_consent": {"True"}, "tenant": {contoso}})
			return err
		}, ""},
		{"unknown state", func(t *testing.T, e *env) error {
			_, err := e.svc.Callback(ctx, consentAnswer("made-up"))
			return err
		}, ""},
		{"expired state", func(t *testing.T, e *env) error {
			u, err := e.svc.BeginConnect(ctx, ws1, "")
			if err != nil {
				t.Fatal(err)
			}
			e.clock.Advance(connection.DefaultStateTTL + time.Second)
			_, err = e.svc.Callback(ctx, consentAnswer(stateOf(t, u)))
			return err
		}, ""},
		{"reused consent state", func(t *testing.T, e *env) error {
			u, err := e.svc.BeginConnect(ctx, ws1, "")
			if err != nil {
				t.Fatal(err)
			}
			res, err := e.svc.Callback(ctx, consentAnswer(stateOf(t, u)))
			if err != nil || res.Next == "" || res.WorkspaceID != ws1 {
				t.Fatalf("first use: %+v %v", res, err)
			}
			_, err = e.svc.Callback(ctx, consentAnswer(stateOf(t, u)))
			return err
		}, ""},
		{"reused sign-in state", func(t *testing.T, e *env) error {
			u, err := e.svc.BeginConnect(ctx, ws1, "")
			if err != nil {
				t.Fatal(err)
			}
			res, err := e.svc.Callback(ctx, consentAnswer(stateOf(t, u)))
			if err != nil {
				t.Fatal(err)
			}
			signin := stateOf(t, res.Next)
			var ce *connection.ConnectError
			if _, err := e.svc.Callback(ctx, url.Values{"code": {"bogus"}, "state": {signin}}); !errors.As(err, &ce) || ce.Code != "signin_failed" {
				t.Fatalf("first use: %v", err)
			}
			_, err = e.svc.Callback(ctx, url.Values{"code": {"bogus"}, "state": {signin}})
			return err
		}, ""},
		{"consent answer without tenant", func(t *testing.T, e *env) error {
			u, err := e.svc.BeginConnect(ctx, ws1, "")
			if err != nil {
				t.Fatal(err)
			}
			_, err = e.svc.Callback(ctx, url.Values{"admin_consent": {"True"}, "tenant": {"../x"}, "state": {stateOf(t, u)}})
			return err
		}, "consent_failed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			want := tc.code
			if want == "" {
				want = "invalid_state"
			}
			err := tc.run(t, e)
			var ce *connection.ConnectError
			if !errors.As(err, &ce) || ce.Code != want || ce.Message == "" {
				t.Fatalf("got %v, want %s", err, want)
			}
			e.noConnection()
		})
	}
}

func TestBeginConnect(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	u, err := e.svc.BeginConnect(ctx, ws1, "https://evil.example/")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := url.Parse(u)
	q := p.Query()
	if p.Path != "/organizations/v2.0/adminconsent" || len(q.Get("state")) < 43 ||
		q.Get("scope") != connection.SentinelPlatform+"/.default "+connection.DefenderMCP+"/.default" {
		t.Fatalf("consent URL %s", u)
	}
	res, err := e.svc.Callback(ctx, url.Values{"admin_consent": {"True"}, "tenant": {contoso}, "state": {q.Get("state")}})
	if err != nil || res.ReturnTo != "" {
		t.Fatalf("a foreign return_to was kept: %+v %v", res, err)
	}
	next, _ := url.Parse(res.Next)
	nq := next.Query()
	if next.Path != "/"+contoso+"/oauth2/v2.0/authorize" || nq.Get("code_challenge_method") != "S256" || nq.Get("code_challenge") == "" ||
		nq.Get("nonce") == "" || nq.Get("prompt") != "select_account" ||
		nq.Get("scope") != connection.SentinelPlatform+"/.default openid profile offline_access" {
		t.Fatalf("authorize URL %s", res.Next)
	}
	if _, err := e.svc.BeginConnect(ctx, "no-such-workspace", ""); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown workspace: %v", err)
	}
}

func TestReconnect(t *testing.T) {
	t.Parallel()
	t.Run("repairs reconnect_required and keeps monitors", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		ctx := context.Background()
		first := e.mustConnect()
		mon := e.addMonitor("Sentinel EU")
		e.emu.RevokeGrants(contoso, 700082)
		if _, err := e.svc.AccessToken(ctx, ws1, connection.SentinelPlatform); !errors.Is(err, connection.ErrReconnectRequired) {
			t.Fatalf("got %v", err)
		}
		e.clock.Advance(time.Minute)
		c := e.mustConnect()
		if c.State != store.StateConnected || c.StateCode != "" || c.StateReason != "" || c.Version <= first.Version ||
			!c.ConnectedAt.After(first.ConnectedAt) {
			t.Fatalf("after reconnect %+v", c)
		}
		if _, err := e.store.GetMonitor(ctx, ws1, mon); err != nil {
			t.Fatalf("monitor lost: %v", err)
		}
		if _, err := e.svc.AccessToken(ctx, ws1, connection.SentinelPlatform); err != nil {
			t.Fatalf("after reconnect: %v", err)
		}
	})
	t.Run("while connected replaces the credential and the cached tokens", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		ctx := context.Background()
		e.mustConnect()
		old, err := e.svc.AccessToken(ctx, ws1, connection.SentinelPlatform)
		if err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(time.Second)
		e.mustConnect()
		n := e.refreshes()
		tok, err := e.svc.AccessToken(ctx, ws1, connection.SentinelPlatform)
		if err != nil || tok.Value == old.Value || e.refreshes() != n+1 {
			t.Fatalf("cached token of the old credential served (%v)", err)
		}
	})
	t.Run("tenant_mismatch with monitors", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		before := e.mustConnect()
		e.addMonitor("Microsoft Sentinel")
		a := e.connect(emulator.BrowseOptions{Username: emulator.FabrikamAdminUsername})
		if a.Connected || a.Code != "tenant_mismatch" || !strings.Contains(a.Message, "Disconnect") ||
			!strings.Contains(a.Message, contoso) || !strings.Contains(a.Message, fabrikam) {
			t.Fatalf("answer %+v", a)
		}
		if c := e.conn(); c.TenantID != contoso || c.Version != before.Version {
			t.Fatalf("connection changed: %+v", c)
		}
	})
	t.Run("another tenant without monitors", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.mustConnect()
		if a := e.connect(emulator.BrowseOptions{Username: emulator.FabrikamAdminUsername}); !a.Connected {
			t.Fatalf("answer %+v", a)
		}
		if c := e.conn(); c.TenantID != fabrikam || c.AccountUsername != emulator.FabrikamAdminUsername {
			t.Fatalf("connection %+v", c)
		}
	})
}

func TestAccessTokenCacheAndRotation(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	before := e.mustConnect()
	rt0 := e.refreshToken(before)
	n0 := e.refreshes()

	const callers = 32
	var wg sync.WaitGroup
	got := make([]connection.Token, callers)
	errs := make([]error, callers)
	for i := range callers {
		wg.Go(func() {
			res := connection.SentinelPlatform
			if i%2 == 1 {
				res = connection.DefenderMCP
			}
			got[i], errs[i] = e.svc.AccessToken(ctx, ws1, res)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("caller %d: %v", i, err)
		}
		if got[i].Value != got[i%2].Value {
			t.Fatalf("callers of one resource got different tokens")
		}
	}
	if n := e.refreshes() - n0; n != 2 {
		t.Fatalf("%d concurrent callers over 2 resources caused %d refreshes, want 2", callers, n)
	}
	after := e.conn()
	if after.Version != before.Version+2 || e.refreshToken(after) == rt0 {
		t.Fatalf("rotation not persisted: version %d → %d", before.Version, after.Version)
	}

	// Cached until a minute before expiry.
	e.clock.Advance(58 * time.Minute)
	if tok, err := e.svc.AccessToken(ctx, ws1, connection.SentinelPlatform); err != nil || tok.Value != got[0].Value {
		t.Fatalf("not served from cache: %v", err)
	}
	if e.refreshes()-n0 != 2 {
		t.Fatal("a cached token was refreshed")
	}
	e.clock.Advance(90 * time.Second)
	tok, err := e.svc.AccessToken(ctx, ws1, connection.SentinelPlatform)
	if err != nil || tok.Value == got[0].Value || e.refreshes()-n0 != 3 {
		t.Fatalf("expiring token not refreshed (%v)", err)
	}

	// Invalidate drops the cache.
	e.svc.Invalidate(ws1)
	if _, err := e.svc.AccessToken(ctx, ws1, connection.SentinelPlatform); err != nil || e.refreshes()-n0 != 4 {
		t.Fatalf("Invalidate kept the token (%v)", err)
	}
}

// TestRefreshSerialisedAcrossReplicas: while replica B redeems the refresh
// token, replica A holds off (the store's refresh lease), then refreshes
// with the token B rotated and stored: two refreshes, two rotations, none
// stale.
func TestRefreshSerialisedAcrossReplicas(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	before := e.mustConnect()
	other := e.newService(options{})
	done := make(chan error, 1)
	hook := func() {
		// B's token request is on the wire: B holds the lease ...
		now := e.clock.Now()
		if ok, err := e.store.ClaimRefresh(ctx, ws1, "intruder", now, now.Add(time.Minute)); err != nil || ok {
			t.Errorf("refresh lease during B's refresh: ok=%v err=%v, want held", ok, err)
		}
		// ... and A, asking now, waits for B instead of redeeming the same
		// refresh token in parallel.
		go func() {
			_, err := other.AccessToken(ctx, ws1, connection.DefenderMCP)
			done <- err
		}()
	}
	e.hook.hook.Store(&hook)
	n0 := e.refreshes()
	if _, err := e.svc.AccessToken(ctx, ws1, connection.SentinelPlatform); err != nil {
		t.Fatalf("replica B: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("replica A: %v", err)
	}
	if n := e.refreshes() - n0; n != 2 {
		t.Fatalf("%d refreshes, want 2 (B, then A with B's rotated token)", n)
	}
	after := e.conn()
	if after.Version != before.Version+2 || after.State != store.StateConnected {
		t.Fatalf("connection %+v", after)
	}
	if strings.Contains(e.logs.String(), "rotated elsewhere") {
		t.Fatal("a rotation was stale: the refreshes overlapped")
	}
	// The lease was handed back: anyone may refresh now.
	now := e.clock.Now()
	if ok, err := e.store.ClaimRefresh(ctx, ws1, "intruder", now, now.Add(time.Minute)); err != nil || !ok {
		t.Fatalf("refresh lease after both refreshes: ok=%v err=%v, want free", ok, err)
	}
}

// TestRotationRaceBetweenReplicas: when two refreshes do overlap despite the
// lease (two processes given one replica id, or a lease that lapsed under a
// refresh slower than it), the version check still keeps the newest
// rotated token.
func TestRotationRaceBetweenReplicas(t *testing.T) {
	t.Parallel()
	e := setup(t, options{owner: "replica-1"})
	ctx := context.Background()
	before := e.mustConnect()
	other := e.newService(options{owner: "replica-1"})
	// Replica B's refresh is in flight when replica A rotates the token.
	hook := func() {
		if _, err := other.AccessToken(ctx, ws1, connection.DefenderMCP); err != nil {
			t.Errorf("replica A: %v", err)
		}
	}
	e.hook.hook.Store(&hook)
	n0 := e.refreshes()
	tok, err := e.svc.AccessToken(ctx, ws1, connection.SentinelPlatform)
	if err != nil || tok.Value == "" {
		t.Fatalf("replica B: %v", err)
	}
	// B's first rotation was stale: it re-read and refreshed once more with
	// the token A stored, and stored its own rotation on top.
	if n := e.refreshes() - n0; n != 3 {
		t.Fatalf("%d refreshes, want 3 (B, A, B again)", n)
	}
	after := e.conn()
	if after.Version != before.Version+2 || after.State != store.StateConnected {
		t.Fatalf("connection %+v", after)
	}
	if !strings.Contains(e.logs.String(), "rotated elsewhere") {
		t.Fatal("stale rotation not logged")
	}
	// The stored token works for both replicas.
	for _, s := range []*connection.Service{e.newService(options{}), other} {
		s.Invalidate(ws1)
		if _, err := s.AccessToken(ctx, ws1, connection.SentinelPlatform); err != nil {
			t.Fatal(err)
		}
	}
}

func TestGrantDead(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		aadsts int
		code   string
		says   string
	}{
		{"P11/700082", 700082, "refresh_token_expired", "expired"},
		{"P11/50173", 50173, "password_changed", "password"},
		{"P11/70043", 70043, "signin_frequency", "Conditional Access"},
		{"P20b/700016", 700016, "app_removed", "Access revoked"},
		{"65001", 65001, "consent_revoked", "consent"},
		{"70008", 70008, "grant_expired", "expired"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			ctx := context.Background()
			e.mustConnect()
			mon := e.addMonitor("Microsoft Sentinel")
			e.emu.RevokeGrants(contoso, tc.aadsts)

			_, err := e.svc.AccessToken(ctx, ws1, connection.SentinelPlatform)
			var se *connection.StateError
			if !errors.Is(err, connection.ErrReconnectRequired) || !errors.As(err, &se) || se.Code != tc.code || !strings.Contains(se.Sentence, tc.says) {
				t.Fatalf("got %v", err)
			}
			var ee *entra.Error
			if !errors.As(err, &ee) || !ee.Has(tc.aadsts) {
				t.Fatalf("cause not kept: %v", err)
			}
			c := e.conn()
			if c.State != store.StateReconnectRequired || c.StateCode != tc.code || c.StateReason != se.Sentence {
				t.Fatalf("connection %+v", c)
			}
			// Later calls, for any resource, do not reach Microsoft.
			calls := e.tokenCalls()
			for range 3 {
				for _, res := range []string{connection.SentinelPlatform, connection.DefenderMCP} {
					_, err := e.svc.AccessToken(ctx, ws1, res)
					if !errors.As(err, &se) || !errors.Is(err, connection.ErrReconnectRequired) || se.Code != tc.code {
						t.Fatalf("later call: %v", err)
					}
				}
			}
			if e.tokenCalls() != calls {
				t.Fatal("a call reached Microsoft in reconnect_required")
			}
			if code, sentence, ok := connection.Explain(fmt.Errorf("poll: %w", err)); !ok || code != tc.code || sentence != se.Sentence {
				t.Fatalf("Explain = %q %q", code, sentence)
			}
			st, err := e.svc.Status(ctx, ws1)
			if err != nil || st.State != store.StateReconnectRequired || st.Code != tc.code || st.Sentence != se.Sentence {
				t.Fatalf("status %+v %v", st, err)
			}
			if _, err := e.store.GetMonitor(ctx, ws1, mon); err != nil {
				t.Fatal("monitor removed by reconnect_required")
			}
		})
	}
}

func TestGrantDeadWhileReconnecting(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	e.mustConnect()
	e.emu.RevokeGrants(contoso, 50173)
	// The admin reconnects while a refresh with the revoked token is on
	// its way: the dead answer concerns the old credential only.
	hook := func() { e.mustConnect() }
	e.hook.hook.Store(&hook)
	if _, err := e.svc.AccessToken(ctx, ws1, connection.SentinelPlatform); err != nil {
		t.Fatalf("got %v", err)
	}
	if c := e.conn(); c.State != store.StateConnected {
		t.Fatalf("state %s after a reconnect", c.State)
	}
}

func TestTransientLeavesStateUnchanged(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		fault      emulator.Fault
		code       string
		retryAfter time.Duration
		timeout    time.Duration
	}{
		{name: "P10/429", fault: emulator.Fault{Kind: emulator.FaultThrottle, RetryAfter: 30 * time.Second}, code: "throttled", retryAfter: 30 * time.Second},
		{name: "503", fault: emulator.Fault{Kind: emulator.FaultServerError}, code: "entra_unavailable"},
		{name: "500", fault: emulator.Fault{Kind: emulator.FaultServerError, Status: 500}, code: "entra_unavailable"},
		{name: "truncated", fault: emulator.Fault{Kind: emulator.FaultTruncate}, code: "malformed_response"},
		{name: "temporarily_unavailable", fault: emulator.Fault{Kind: emulator.FaultAADSTS, AADSTS: 90033}, code: "entra_unavailable"},
		{name: "timeout", fault: emulator.Fault{Kind: emulator.FaultDelay, Delay: time.Minute}, code: "timeout", timeout: 100 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, options{refreshTimeout: tc.timeout})
			ctx := context.Background()
			before := e.mustConnect()
			f := tc.fault
			f.Target, f.GrantType, f.Count = emulator.EndpointToken, "refresh_token", 1
			e.emu.SetFault(f)

			_, err := e.svc.AccessToken(ctx, ws1, connection.SentinelPlatform)
			var te *connection.TransientError
			if !errors.Is(err, connection.ErrTransient) || !errors.As(err, &te) || te.Code != tc.code {
				t.Fatalf("got %v", err)
			}
			if ra, _ := connection.RetryAfter(err); ra != tc.retryAfter {
				t.Fatalf("Retry-After %v, want %v", ra, tc.retryAfter)
			}
			if c := e.conn(); c.State != store.StateConnected || c.StateCode != "" || c.Version != before.Version {
				t.Fatalf("state changed: %+v", c)
			}
			// The failure is not cached: the next call asks again and works.
			if _, err := e.svc.AccessToken(ctx, ws1, connection.SentinelPlatform); err != nil {
				t.Fatalf("after the fault: %v", err)
			}
		})
	}
}

func TestServiceNotEnabledDegrades(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	e.mustConnect()
	if err := e.emu.SetDefenderMCPProvisioned(contoso, false); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.AccessToken(ctx, ws1, connection.DefenderMCP)
	var se *connection.StateError
	if !errors.Is(err, connection.ErrServiceNotEnabled) || !errors.As(err, &se) || se.Code != connection.CodeDefenderMCPNotEnabled ||
		!strings.Contains(se.Sentence, "az ad sp create --id 7b7b3966-1961-47b5-b080-43ca5482e21c") {
		t.Fatalf("got %v", err)
	}
	c := e.conn()
	if c.State != store.StateDegraded || c.StateCode != connection.CodeDefenderMCPNotEnabled || c.StateReason != se.Sentence {
		t.Fatalf("connection %+v", c)
	}
	// The data lake keeps working, and the state stays degraded.
	if _, err := e.svc.AccessToken(ctx, ws1, connection.SentinelPlatform); err != nil {
		t.Fatalf("data lake: %v", err)
	}
	if c := e.conn(); c.State != store.StateDegraded {
		t.Fatalf("state %s", c.State)
	}
	// Triage answers at once with the remedy, without asking Microsoft.
	calls := e.tokenCalls()
	if _, err := e.svc.AccessToken(ctx, ws1, connection.DefenderMCP); !errors.Is(err, connection.ErrServiceNotEnabled) {
		t.Fatalf("got %v", err)
	}
	if e.tokenCalls() != calls {
		t.Fatal("asked Microsoft again within the recheck interval")
	}
	// The admin runs the remedy; after the recheck interval it recovers.
	if err := e.emu.SetDefenderMCPProvisioned(contoso, true); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(connection.DefaultServiceRecheck + time.Second)
	if _, err := e.svc.AccessToken(ctx, ws1, connection.DefenderMCP); err != nil {
		t.Fatalf("after the remedy: %v", err)
	}
	if c := e.conn(); c.State != store.StateConnected || c.StateCode != "" {
		t.Fatalf("not recovered: %+v", c)
	}
}

func TestDisconnect(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	e.mustConnect()
	m1, m2 := e.addMonitor("a"), e.addMonitor("b")
	if _, err := e.svc.AccessToken(ctx, ws1, connection.SentinelPlatform); err != nil {
		t.Fatal(err)
	}
	removed, err := e.svc.Disconnect(ctx, ws1)
	if err != nil || len(removed) != 2 || !(removed[0] == m1 || removed[1] == m1) || !(removed[0] == m2 || removed[1] == m2) {
		t.Fatalf("removed %v %v", removed, err)
	}
	e.noConnection()
	calls := e.tokenCalls()
	if _, err := e.svc.AccessToken(ctx, ws1, connection.SentinelPlatform); !errors.Is(err, connection.ErrNotConnected) {
		t.Fatalf("cached token served after disconnect: %v", err)
	}
	if e.tokenCalls() != calls {
		t.Fatal("called Microsoft after disconnect")
	}
	if _, err := e.svc.Disconnect(ctx, ws1); !errors.Is(err, connection.ErrNotConnected) || !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second disconnect: %v", err)
	}
	st, err := e.svc.Status(ctx, ws1)
	if err != nil || st.State != connection.StateDisconnected || st.Connected() {
		t.Fatalf("status %+v %v", st, err)
	}
	// P20c: connecting again works.
	e.mustConnect()
}

func TestAccessTokenCallerGivesUp(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.mustConnect()
	n0 := e.refreshes()
	// The refresh takes a while; the first caller gives up before it ends.
	e.emu.SetFault(emulator.Fault{Kind: emulator.FaultDelay, Target: emulator.EndpointToken, GrantType: "refresh_token",
		Delay: 200 * time.Millisecond, Count: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := e.svc.AccessToken(ctx, ws1, connection.SentinelPlatform); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	// Another caller is not failed by the first one's cancellation: it
	// gets the token of the same refresh.
	if _, err := e.svc.AccessToken(context.Background(), ws1, connection.SentinelPlatform); err != nil {
		t.Fatalf("second caller: %v", err)
	}
	if n := e.refreshes() - n0; n != 1 {
		t.Fatalf("%d refreshes, want 1", n)
	}
}
