package emulator

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// testKey is shared by the tests' emulators: generating an RSA key per test
// is slow.
var testKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// testClock is an injected clock that moves only when told.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

var testStart = time.Date(2024, 6, 21, 1, 0, 0, 0, time.UTC)

type fixture struct {
	e     *Emulator
	srv   *httptest.Server
	clock *testClock
}

// setup starts an emulator with DefaultConfig (changed by mutate) on a
// loopback httptest server, with a test clock at testStart.
func setup(t *testing.T, mutate ...func(*Config)) *fixture {
	t.Helper()
	clock := &testClock{now: testStart}
	cfg := DefaultConfig()
	cfg.SigningKey = testKey()
	cfg.Now = clock.Now
	for _, m := range mutate {
		m(&cfg)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e.Handler())
	t.Cleanup(srv.Close)
	return &fixture{e: e, srv: srv, clock: clock}
}

const testRedirect = "http://127.0.0.1/callback"

// stopAtCallback makes the browser stop before requesting testRedirect
// (nothing serves it).
func stopAtCallback(u *url.URL) bool { return strings.HasPrefix(u.String(), testRedirect) }

// browse runs the browser from startURL until the redirect to
// testRedirect, and returns that redirect's query.
func (f *fixture) browse(t *testing.T, startURL string, opts BrowseOptions) url.Values {
	t.Helper()
	opts.Stop = stopAtCallback
	resp, err := NewBrowser(f.srv.Client()).ClickThrough(context.Background(), startURL, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, testRedirect) {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("browser ended at %d %s (Location %q), want a redirect to the app\n%s", resp.StatusCode, resp.Request.URL, loc, body)
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

func consentURL(base, tenant, scope, state string) string {
	q := url.Values{"client_id": {DefaultClientID}, "scope": {scope}, "redirect_uri": {testRedirect}, "state": {state}}
	return base + "/" + tenant + "/v2.0/adminconsent?" + q.Encode()
}

// pkce returns a verifier and its S256 challenge.
func pkce() (verifier, challenge string) {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	verifier = base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

func authorizeURL(base, tenant, scope, state, nonce, challenge string) string {
	q := url.Values{
		"client_id": {DefaultClientID}, "response_type": {"code"}, "redirect_uri": {testRedirect},
		"scope": {scope}, "state": {state}, "nonce": {nonce}, "prompt": {"select_account"},
	}
	if challenge != "" {
		q.Set("code_challenge", challenge)
		q.Set("code_challenge_method", "S256")
	}
	return base + "/" + tenant + "/oauth2/v2.0/authorize?" + q.Encode()
}

const (
	scopeBoth        = SentinelPlatformResource + "/.default " + DefenderMCPResource + "/" + DefenderMCPPermission
	scopeSignIn      = SentinelPlatformResource + "/.default openid profile offline_access"
	scopeRefreshLake = SentinelPlatformResource + "/.default offline_access"
	scopeRefreshMCP  = DefenderMCPResource + "/" + DefenderMCPPermission + " offline_access"
)

// signIn runs the sign-in page and returns the code and the PKCE verifier.
func (f *fixture) signIn(t *testing.T, tenant string, opts BrowseOptions) (code, verifier string) {
	t.Helper()
	verifier, challenge := pkce()
	q := f.browse(t, authorizeURL(f.srv.URL, tenant, scopeSignIn, "st-2", "n-1", challenge), opts)
	if q.Get("code") == "" || q.Get("state") != "st-2" {
		t.Fatalf("sign-in callback %v, want a code and state st-2", q)
	}
	return q.Get("code"), verifier
}

// postToken posts a form to the token endpoint of a tenant path.
func (f *fixture) postToken(t *testing.T, tenant string, form url.Values) (int, http.Header, map[string]any) {
	t.Helper()
	resp, err := f.srv.Client().PostForm(f.srv.URL+"/"+tenant+"/oauth2/v2.0/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &body); err != nil {
		body = map[string]any{"_raw": string(raw)}
	}
	return resp.StatusCode, resp.Header, body
}

func codeForm(code, verifier string) url.Values {
	return url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {testRedirect},
		"code_verifier": {verifier}, "client_id": {DefaultClientID}, "client_secret": {DefaultClientSecret},
		"scope": {scopeSignIn},
	}
}

func refreshForm(rt, scope string) url.Values {
	return url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {rt}, "scope": {scope},
		"client_id": {DefaultClientID}, "client_secret": {DefaultClientSecret},
	}
}

// connect consents to both resources in a tenant, signs in and redeems the
// code; it returns the token answer.
func (f *fixture) connect(t *testing.T, tenant string) map[string]any {
	t.Helper()
	q := f.browse(t, consentURL(f.srv.URL, "organizations", scopeBoth, "st-1"), BrowseOptions{Username: firstUser(f.e, tenant)})
	if q.Get("admin_consent") != "True" {
		t.Fatalf("consent callback %v", q)
	}
	code, verifier := f.signIn(t, tenant, BrowseOptions{})
	status, _, body := f.postToken(t, tenant, codeForm(code, verifier))
	if status != http.StatusOK {
		t.Fatalf("code redemption: %d %v", status, body)
	}
	return body
}

func firstUser(e *Emulator, tenant string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.tenant(tenant).Users[0].Username
}

// jwks fetches the emulator's keys.
func (f *fixture) jwks(t *testing.T, tenant string) jose.JSONWebKeySet {
	t.Helper()
	resp, err := f.srv.Client().Get(f.srv.URL + "/" + tenant + "/discovery/v2.0/keys")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	return set
}

// verifyJWT checks a token against the JWKS and returns its claims.
func verifyJWT(t *testing.T, set jose.JSONWebKeySet, raw string) map[string]any {
	t.Helper()
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatalf("parse token: %v", err)
	}
	keys := set.Key(tok.Headers[0].KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q: %d keys in the JWKS", tok.Headers[0].KeyID, len(keys))
	}
	var claims map[string]any
	if err := tok.Claims(keys[0].Key, &claims); err != nil {
		t.Fatalf("verify token: %v", err)
	}
	return claims
}

// assertEntraError checks an error answer of the token endpoint.
func assertEntraError(t *testing.T, status int, body map[string]any, wantStatus int, wantErr string, wantCode int) {
	t.Helper()
	if status != wantStatus || body["error"] != wantErr {
		t.Fatalf("got %d %v, want %d %s", status, body, wantStatus, wantErr)
	}
	codes, _ := body["error_codes"].([]any)
	if len(codes) != 1 || int(codes[0].(float64)) != wantCode {
		t.Errorf("error_codes %v, want [%d]", body["error_codes"], wantCode)
	}
	desc, _ := body["error_description"].(string)
	if !strings.HasPrefix(desc, "AADSTS"+strconv.Itoa(wantCode)+": ") {
		t.Errorf("error_description %q does not start with AADSTS%d", desc, wantCode)
	}
	for _, k := range []string{"timestamp", "trace_id", "correlation_id", "error_uri"} {
		if s, _ := body[k].(string); s == "" {
			t.Errorf("error body lacks %s: %v", k, body)
		}
	}
}
