package entra_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clarion/sentinel/internal/emulator"
	"github.com/clarion/sentinel/internal/entra"
	"golang.org/x/oauth2"
)

const (
	platform = emulator.SentinelPlatformResource
	defender = emulator.DefenderMCPResource
	contoso  = emulator.ContosoTenantID
	fabrikam = emulator.FabrikamTenantID
	// redirectURI is never served: the browser stops at it.
	redirectURI = "http://127.0.0.1:1/callback"
)

var signInScopes = []string{platform + "/.default", "openid", "profile", "offline_access"}

// clock is the injected time of the emulator and the client.
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

type env struct {
	emu    *emulator.Emulator
	srv    *httptest.Server
	client *entra.Client
	clock  *clock
}

// setup starts an emulator on loopback and a client pointed at it.
func setup(t *testing.T) *env {
	t.Helper()
	clk := &clock{t: time.Now().UTC().Truncate(time.Second)}
	cfg := emulator.DefaultConfig()
	cfg.Now = clk.Now
	emu, err := emulator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(emu.Handler())
	t.Cleanup(srv.Close)
	return &env{emu: emu, srv: srv, clock: clk, client: &entra.Client{
		Authority: srv.URL, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret,
		RedirectURI: redirectURI, HTTP: srv.Client(), Now: clk.Now,
	}}
}

// browse opens u in the emulator's scripted browser and returns the query of
// the redirect to redirectURI.
func (e *env) browse(t *testing.T, u string, opts emulator.BrowseOptions) url.Values {
	t.Helper()
	opts.Stop = func(next *url.URL) bool { return strings.HasPrefix(next.String(), redirectURI) }
	resp, err := emulator.NewBrowser(e.srv.Client()).ClickThrough(context.Background(), u, opts)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(loc.String(), redirectURI) {
		t.Fatalf("browser ended at %d %q, not at the redirect URI", resp.StatusCode, resp.Header.Get("Location"))
	}
	return loc.Query()
}

// consent grants admin consent for both resources and returns the tenant.
func (e *env) consent(t *testing.T, username string) string {
	t.Helper()
	q := e.browse(t, e.client.AdminConsentURL("st-consent", []string{platform + "/.default", defender + "/.default"}),
		emulator.BrowseOptions{Username: username})
	if q.Get("error") != "" || q.Get("admin_consent") != "True" || q.Get("state") != "st-consent" {
		t.Fatalf("consent answer %v", q)
	}
	return q.Get("tenant")
}

type signedIn struct {
	tokens *entra.TokenResponse
	nonce  string
}

// signIn runs the authorization-code flow with PKCE at tenant.
func (e *env) signIn(t *testing.T, tenant string) signedIn {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	nonce := "nonce-" + oauth2.GenerateVerifier()[:8]
	q := e.browse(t, e.client.AuthorizeURL(tenant, "st-signin", nonce, oauth2.S256ChallengeFromVerifier(verifier), signInScopes),
		emulator.BrowseOptions{})
	if q.Get("error") != "" || q.Get("state") != "st-signin" || q.Get("code") == "" {
		t.Fatalf("sign-in answer %v", q)
	}
	tr, err := e.client.Redeem(context.Background(), tenant, q.Get("code"), verifier, signInScopes)
	if err != nil {
		t.Fatal(err)
	}
	return signedIn{tokens: tr, nonce: nonce}
}

func TestConsentSignInRedeemRefresh(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	tenant := e.consent(t, emulator.ContosoAdminUsername)
	if tenant != contoso {
		t.Fatalf("consent tenant %s", tenant)
	}
	s := e.signIn(t, tenant)
	if s.tokens.AccessToken == "" || s.tokens.RefreshToken == "" || s.tokens.IDToken == "" {
		t.Fatalf("tokens: %v", s.tokens)
	}
	if !s.tokens.ExpiresAt.Equal(e.clock.Now().Add(time.Hour)) {
		t.Fatalf("expires at %s", s.tokens.ExpiresAt)
	}
	claims, err := e.client.VerifyIDToken(ctx, tenant, s.tokens.IDToken, s.nonce)
	if err != nil {
		t.Fatal(err)
	}
	if claims.TenantID != contoso || claims.ObjectID != emulator.ContosoAdminOID ||
		claims.PreferredUsername != emulator.ContosoAdminUsername || claims.Issuer != e.srv.URL+"/"+contoso+"/v2.0" {
		t.Fatalf("claims %+v", claims)
	}

	for _, res := range []string{defender, platform} {
		tr, err := e.client.Refresh(ctx, tenant, s.tokens.RefreshToken, []string{res + "/.default", "offline_access"})
		if err != nil {
			t.Fatalf("refresh %s: %v", res, err)
		}
		if tr.AccessToken == "" || tr.RefreshToken == "" || tr.RefreshToken == s.tokens.RefreshToken {
			t.Fatalf("refresh %s: %v", res, tr)
		}
		if !strings.Contains(tr.Scope, res+"/") {
			t.Fatalf("refresh %s: scope %q", res, tr.Scope)
		}
	}
}

func TestVerifyIDToken(t *testing.T) {
	t.Parallel()
	e := setup(t)
	s := e.signIn(t, contoso)
	raw := s.tokens.IDToken
	later := func(d time.Duration) func() time.Time { return func() time.Time { return e.clock.Now().Add(d) } }
	client := func(mod func(c *entra.Client)) *entra.Client {
		c := &entra.Client{Authority: e.client.Authority, ClientID: e.client.ClientID, HTTP: e.srv.Client(), Now: e.clock.Now}
		if mod != nil {
			mod(c)
		}
		return c
	}
	parts := strings.Split(raw, ".")
	tampered := parts[0] + "." + parts[1] + "." + strings.Map(func(r rune) rune {
		if r == 'A' {
			return 'B'
		}
		return 'A'
	}, parts[2])

	tests := []struct {
		name    string
		c       *entra.Client
		tenant  string
		raw     string
		nonce   string
		wantErr error
	}{
		{"valid", client(nil), contoso, raw, s.nonce, nil},
		{"within clock skew after exp", client(func(c *entra.Client) { c.Now = later(time.Hour + time.Minute) }), contoso, raw, s.nonce, nil},
		{"expired", client(func(c *entra.Client) { c.Now = later(time.Hour + 3*time.Minute) }), contoso, raw, s.nonce, entra.ErrInvalidIDToken},
		{"not yet valid", client(func(c *entra.Client) { c.Now = later(-5 * time.Minute) }), contoso, raw, s.nonce, entra.ErrInvalidIDToken},
		{"nonce mismatch", client(nil), contoso, raw, "other", entra.ErrInvalidIDToken},
		{"no nonce expected", client(nil), contoso, raw, "", entra.ErrInvalidIDToken},
		{"other audience", client(func(c *entra.Client) { c.ClientID = "00000000-0000-0000-0000-000000000001" }), contoso, raw, s.nonce, entra.ErrInvalidIDToken},
		{"other issuer", client(func(c *entra.Client) { c.Authority = "http://127.0.0.1:1" }), contoso, raw, s.nonce, nil},
		{"P12c/token of another tenant", client(nil), fabrikam, raw, s.nonce, entra.ErrTenantMismatch},
		{"bad signature", client(nil), contoso, tampered, s.nonce, entra.ErrInvalidIDToken},
		{"not a JWT", client(nil), contoso, "not-a-jwt", s.nonce, entra.ErrInvalidIDToken},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := tc.c.VerifyIDToken(context.Background(), tc.tenant, tc.raw, tc.nonce)
			if tc.name == "other issuer" {
				// Keys cannot even be fetched from a dead authority: the
				// error is transient, never a success.
				if err == nil || entra.Classify(err) != entra.Transient {
					t.Fatalf("err %v (%v)", err, entra.Classify(err))
				}
				return
			}
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), parts[2][:16]) {
				t.Fatal("error carries the token")
			}
		})
	}
	if got := entra.Classify(func() error {
		_, err := client(nil).VerifyIDToken(context.Background(), fabrikam, raw, s.nonce)
		return err
	}()); got != entra.WrongTenant {
		t.Fatalf("another tenant's token classifies as %v", got)
	}
}

// switchHandler serves one emulator, then another: a key rollover.
type switchHandler struct{ h atomic.Pointer[http.Handler] }

func (s *switchHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(*s.h.Load()).ServeHTTP(w, r)
}

func TestJWKSCacheAndKeyRollover(t *testing.T) {
	t.Parallel()
	clk := &clock{t: time.Now().UTC().Truncate(time.Second)}
	newEmu := func() *emulator.Emulator {
		cfg := emulator.DefaultConfig()
		cfg.Now = clk.Now
		emu, err := emulator.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return emu
	}
	old, rolled := newEmu(), newEmu()
	sw := &switchHandler{}
	h := old.Handler()
	sw.h.Store(&h)
	srv := httptest.NewServer(sw)
	t.Cleanup(srv.Close)
	cfg := emulator.DefaultConfig()
	e := &env{emu: old, srv: srv, clock: clk, client: &entra.Client{Authority: srv.URL, ClientID: cfg.ClientID,
		ClientSecret: cfg.ClientSecret, RedirectURI: redirectURI, HTTP: srv.Client(), Now: clk.Now}}
	ctx := context.Background()
	keysFetched := func(emu *emulator.Emulator) int {
		return emu.Stats().Tenant(contoso).Endpoints[emulator.EndpointKeys].Count
	}

	first := e.signIn(t, contoso)
	second := e.signIn(t, contoso)
	for _, s := range []signedIn{first, second} {
		if _, err := e.client.VerifyIDToken(ctx, contoso, s.tokens.IDToken, s.nonce); err != nil {
			t.Fatal(err)
		}
	}
	if n := keysFetched(old); n != 1 {
		t.Fatalf("keys fetched %d times for two verifications, want 1", n)
	}

	// Microsoft rolls its signing key: tokens now carry an unknown kid.
	h2 := rolled.Handler()
	sw.h.Store(&h2)
	e.emu = rolled
	third := e.signIn(t, contoso)
	// Within a minute of the last fetch an unknown kid does not refetch.
	if _, err := e.client.VerifyIDToken(ctx, contoso, third.tokens.IDToken, third.nonce); !errors.Is(err, entra.ErrInvalidIDToken) {
		t.Fatalf("unknown kid right after a fetch: %v", err)
	}
	if n := keysFetched(rolled); n != 0 {
		t.Fatalf("refetched %d times within a minute", n)
	}
	clk.Advance(2 * time.Minute)
	if _, err := e.client.VerifyIDToken(ctx, contoso, third.tokens.IDToken, third.nonce); err != nil {
		t.Fatalf("after rollover: %v", err)
	}
	if n := keysFetched(rolled); n != 1 {
		t.Fatalf("keys fetched %d times after rollover, want 1", n)
	}
}

func TestTokenEndpointErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		fault      *emulator.Fault
		revoke     int
		timeout    time.Duration
		class      entra.Class
		code       string
		retryAfter time.Duration
	}{
		{name: "P10/429 keeps Retry-After", fault: &emulator.Fault{Kind: emulator.FaultThrottle, Target: emulator.EndpointToken, RetryAfter: 30 * time.Second},
			class: entra.Transient, code: "throttled", retryAfter: 30 * time.Second},
		{name: "503", fault: &emulator.Fault{Kind: emulator.FaultServerError, Target: emulator.EndpointToken},
			class: entra.Transient, code: "entra_unavailable"},
		{name: "truncated body", fault: &emulator.Fault{Kind: emulator.FaultTruncate, Target: emulator.EndpointToken},
			class: entra.Transient, code: "malformed_response"},
		{name: "timeout", fault: &emulator.Fault{Kind: emulator.FaultDelay, Target: emulator.EndpointToken, Delay: time.Minute},
			timeout: 50 * time.Millisecond, class: entra.Transient, code: "timeout"},
		{name: "P11/700082", revoke: 700082, class: entra.GrantDead, code: "refresh_token_expired"},
		{name: "P11/50173", revoke: 50173, class: entra.GrantDead, code: "password_changed"},
		{name: "P11/70043", revoke: 70043, class: entra.GrantDead, code: "signin_frequency"},
		{name: "65001", revoke: 65001, class: entra.GrantDead, code: "consent_revoked"},
		{name: "P20b/700016", revoke: 700016, class: entra.GrantDead, code: "app_removed"},
		{name: "650052 Defender MCP", fault: &emulator.Fault{Kind: emulator.FaultDefenderNotProvisioned, Target: emulator.EndpointToken},
			class: entra.ServiceNotEnabled, code: "service_not_enabled"},
		{name: "aadsts fault 70000", fault: &emulator.Fault{Kind: emulator.FaultAADSTS, AADSTS: 70000, GrantType: "refresh_token"},
			class: entra.GrantDead, code: "grant_invalid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			e.consent(t, "")
			s := e.signIn(t, contoso)
			if tc.fault != nil {
				f := *tc.fault
				f.Count = 1
				e.emu.SetFault(f)
			}
			if tc.revoke != 0 {
				e.emu.RevokeGrants(contoso, tc.revoke)
			}
			ctx := context.Background()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			_, err := e.client.Refresh(ctx, contoso, s.tokens.RefreshToken, []string{defender + "/.default", "offline_access"})
			if err == nil {
				t.Fatal("refresh succeeded")
			}
			x := entra.Explain(err)
			if x.Class != tc.class || x.Code != tc.code {
				t.Fatalf("%v: class %v code %q, want %v %q", err, x.Class, x.Code, tc.class, tc.code)
			}
			if ra, _ := entra.RetryAfter(err); ra != tc.retryAfter {
				t.Fatalf("Retry-After %v, want %v", ra, tc.retryAfter)
			}
			if strings.Contains(err.Error(), s.tokens.RefreshToken) || strings.Contains(x.Sentence, s.tokens.RefreshToken) ||
				strings.Contains(err.Error(), emulator.DefaultClientSecret) {
				t.Fatal("error carries a secret")
			}
		})
	}
}

func TestRedeemErrors(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	verifier := oauth2.GenerateVerifier()
	q := e.browse(t, e.client.AuthorizeURL(contoso, "s", "n", oauth2.S256ChallengeFromVerifier(verifier), signInScopes), emulator.BrowseOptions{})
	code := q.Get("code")

	_, err := e.client.Redeem(ctx, contoso, code, oauth2.GenerateVerifier(), signInScopes)
	var ee *entra.Error
	if !errors.As(err, &ee) || ee.Code != "invalid_grant" || !ee.Has(501481) {
		t.Fatalf("wrong verifier: %v", err)
	}
	if strings.Contains(err.Error(), code) || strings.Contains(err.Error(), verifier) {
		t.Fatal("error carries the code or the verifier")
	}
	if _, err := e.client.Redeem(ctx, contoso, code, verifier, signInScopes); err != nil {
		t.Fatalf("right verifier: %v", err)
	}
	_, err = e.client.Redeem(ctx, contoso, code, verifier, signInScopes)
	if !errors.As(err, &ee) || !ee.Has(54005) {
		t.Fatalf("code redeemed twice: %v", err)
	}

	bad := &entra.Client{Authority: e.client.Authority, ClientID: e.client.ClientID, ClientSecret: "wrong",
		RedirectURI: redirectURI, HTTP: e.srv.Client(), Now: e.clock.Now}
	s := e.signIn(t, contoso)
	_, err = bad.Refresh(ctx, contoso, s.tokens.RefreshToken, []string{platform + "/.default"})
	if x := entra.Explain(err); x.Class != entra.Other || x.Code != "client_credentials_invalid" {
		t.Fatalf("wrong client secret: %v → %+v", err, x)
	}
}

func TestConsentAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		fault *emulator.Fault
		opts  emulator.BrowseOptions
		class entra.Class
		code  string
	}{
		{name: "P12a/650052", fault: &emulator.Fault{Kind: emulator.FaultDefenderNotProvisioned, Target: emulator.EndpointConsent},
			class: entra.ServiceNotEnabled, code: "service_not_enabled"},
		{name: "P12b/declined", opts: emulator.BrowseOptions{Cancel: true}, class: entra.ConsentDeclined, code: "consent_declined"},
		{name: "90094", fault: &emulator.Fault{Kind: emulator.FaultAADSTS, Target: emulator.EndpointConsent, AADSTS: 90094},
			class: entra.ConsentDeclined, code: "consent_required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			if tc.fault != nil {
				e.emu.SetFault(*tc.fault)
			}
			q := e.browse(t, e.client.AdminConsentURL("st", []string{platform + "/.default", defender + "/.default"}), tc.opts)
			ee := entra.ErrorFromQuery(q)
			if ee == nil {
				t.Fatalf("no error in %v", q)
			}
			if x := entra.Explain(ee); x.Class != tc.class || x.Code != tc.code {
				t.Fatalf("%v → %+v", ee, x)
			}
			if q.Get("state") != "st" {
				t.Fatal("state not returned")
			}
		})
	}
}
