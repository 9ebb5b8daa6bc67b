package emulator

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// TestConnectFlowThroughBrowser plays Clarion's connect flow against the
// emulator with a scripted browser: admin consent at /organizations, sign-in
// with PKCE at the consenting tenant, then code redemption; the tokens
// verify against the JWKS.
func TestConnectFlowThroughBrowser(t *testing.T) {
	t.Parallel()
	f := setup(t)
	verifier, challenge := pkce()
	var gotCode string
	// A stand-in for Clarion: /connect starts consent; the consent
	// callback starts the sign-in; the sign-in callback receives the code.
	var app *httptest.Server
	app = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		switch r.URL.Path {
		case "/connect":
			http.SetCookie(w, &http.Cookie{Name: "flow", Value: "abc", Path: "/"})
			u := f.srv.URL + "/organizations/v2.0/adminconsent?" + url.Values{
				"client_id": {DefaultClientID}, "scope": {scopeBoth}, "redirect_uri": {app.URL + "/consent"}, "state": {"s1"},
			}.Encode()
			http.Redirect(w, r, u, http.StatusFound)
		case "/consent":
			if c, err := r.Cookie("flow"); err != nil || c.Value != "abc" {
				http.Error(w, "no flow cookie", http.StatusBadRequest)
				return
			}
			if q.Get("admin_consent") != "True" || q.Get("state") != "s1" || q.Get("tenant") != ContosoTenantID {
				http.Error(w, "bad consent callback: "+r.URL.RawQuery, http.StatusBadRequest)
				return
			}
			u := f.srv.URL + "/" + q.Get("tenant") + "/oauth2/v2.0/authorize?" + url.Values{
				"client_id": {DefaultClientID}, "response_type": {"code"}, "redirect_uri": {app.URL + "/signin"},
				"scope": {scopeSignIn}, "state": {"s2"}, "nonce": {"n2"}, "code_challenge": {challenge},
				"code_challenge_method": {"S256"}, "prompt": {"select_account"},
			}.Encode()
			http.Redirect(w, r, u, http.StatusFound)
		case "/signin":
			if q.Get("state") != "s2" || q.Get("code") == "" {
				http.Error(w, "bad sign-in callback: "+r.URL.RawQuery, http.StatusBadRequest)
				return
			}
			gotCode = q.Get("code")
			io.WriteString(w, "connected")
		}
	}))
	t.Cleanup(app.Close)

	b := NewBrowser(nil)
	resp, err := b.ClickThrough(context.Background(), app.URL+"/connect", BrowseOptions{Username: ContosoAdminUsername})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "connected" {
		t.Fatalf("flow ended with %d %q; visited %v", resp.StatusCode, body, b.Visited())
	}

	form := url.Values{
		"grant_type": {"authorization_code"}, "code": {gotCode}, "redirect_uri": {app.URL + "/signin"},
		"code_verifier": {verifier}, "client_id": {DefaultClientID}, "client_secret": {DefaultClientSecret},
		"scope": {scopeSignIn},
	}
	status, _, tok := f.postToken(t, ContosoTenantID, form)
	if status != http.StatusOK {
		t.Fatalf("redeem: %d %v", status, tok)
	}
	if tok["token_type"] != "Bearer" || tok["refresh_token"] == nil || tok["id_token"] == nil || tok["expires_in"].(float64) != 3600 {
		t.Errorf("token answer %v", tok)
	}
	if want := SentinelPlatformResource + "/" + SentinelPlatformPermission + " openid profile offline_access"; tok["scope"] != want {
		t.Errorf("scope %q, want %q", tok["scope"], want)
	}

	set := f.jwks(t, ContosoTenantID)
	id := verifyJWT(t, set, tok["id_token"].(string))
	wantIss := f.srv.URL + "/" + ContosoTenantID + "/v2.0"
	for k, want := range map[string]any{
		"aud": DefaultClientID, "iss": wantIss, "tid": ContosoTenantID, "oid": ContosoAdminOID,
		"preferred_username": ContosoAdminUsername, "name": ContosoAdminDisplayName, "nonce": "n2",
	} {
		if id[k] != want {
			t.Errorf("id token %s = %v, want %v", k, id[k], want)
		}
	}
	at := verifyJWT(t, set, tok["access_token"].(string))
	for k, want := range map[string]any{
		"aud": SentinelPlatformResource, "iss": wantIss, "tid": ContosoTenantID, "oid": ContosoAdminOID,
		"scp": SentinelPlatformPermission, "azp": DefaultClientID, "appid": DefaultClientID,
	} {
		if at[k] != want {
			t.Errorf("access token %s = %v, want %v", k, at[k], want)
		}
	}
	if exp := int64(at["exp"].(float64)); exp != testStart.Add(time.Hour).Unix() {
		t.Errorf("exp %d, want iat+1h", exp)
	}

	st := f.e.Stats().Tenant(ContosoTenantID)
	for ep, want := range map[string]int{EndpointConsent: 1, EndpointAuthorize: 2, EndpointToken: 1} {
		if got := st.Endpoints[ep].Count; got != want {
			t.Errorf("Stats %s = %d, want %d", ep, got, want)
		}
	}
	if st.Grants["authorization_code"].Count != 1 || st.Resources[SentinelPlatformResource].Count != 1 {
		t.Errorf("Stats grants %v resources %v", st.Grants, st.Resources)
	}
	if got := f.e.Stats().Tenant("organizations").Endpoints[EndpointConsent].Count; got != 1 {
		t.Errorf("consent page at /organizations counted %d times, want 1", got)
	}
	if c := f.e.Consented(ContosoTenantID); len(c) != 3 {
		t.Errorf("Consented = %v, want the two resources and Graph", c)
	}
}

func TestCodeRedemptionErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		tenantPath string
		change     func(f *fixture, form url.Values)
		wantStatus int
		wantErr    string
		wantCode   int
	}{
		{"PKCE verifier mismatch", ContosoTenantID, func(_ *fixture, f url.Values) {
			f.Set("code_verifier", "wrong-verifier-wrong-verifier-wrong-verifier-123")
		}, 400, "invalid_grant", 501481},
		{"PKCE verifier missing", ContosoTenantID, func(_ *fixture, f url.Values) { f.Del("code_verifier") }, 400, "invalid_request", 900144},
		{"wrong client secret", ContosoTenantID, func(_ *fixture, f url.Values) { f.Set("client_secret", "nope") }, 401, "invalid_client", 7000215},
		{"missing client secret", ContosoTenantID, func(_ *fixture, f url.Values) { f.Del("client_secret") }, 401, "invalid_client", 7000218},
		{"unknown client", ContosoTenantID, func(_ *fixture, f url.Values) { f.Set("client_id", "11111111-2222-3333-4444-555555555555") }, 401, "invalid_client", 700016},
		{"redirect URI differs", ContosoTenantID, func(_ *fixture, f url.Values) { f.Set("redirect_uri", "http://127.0.0.1/other") }, 400, "invalid_grant", 500112},
		{"unknown code", ContosoTenantID, func(_ *fixture, f url.Values) { f.Set("code", "0.Anot-a-code") }, 400, "invalid_grant", 9002313},
		{"code expired", ContosoTenantID, func(fx *fixture, _ url.Values) { fx.clock.Advance(11 * time.Minute) }, 400, "invalid_grant", 70008},
		{"code of another tenant", FabrikamTenantID, nil, 400, "invalid_grant", 700005},
		{"unknown tenant", "0c0c0c0c-0000-4000-8000-000000000000", nil, 400, "invalid_tenant", 90002},
		{"two resources in scope", ContosoTenantID, func(_ *fixture, f url.Values) { f.Set("scope", scopeBoth) }, 400, "invalid_scope", 28000},
		{"unsupported grant type", ContosoTenantID, func(_ *fixture, f url.Values) { f.Set("grant_type", "password") }, 400, "unsupported_grant_type", 70003},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			f.browse(t, consentURL(f.srv.URL, ContosoTenantID, scopeBoth, "s"), BrowseOptions{})
			code, verifier := f.signIn(t, ContosoTenantID, BrowseOptions{})
			form := codeForm(code, verifier)
			if tc.change != nil {
				tc.change(f, form)
			}
			status, _, body := f.postToken(t, tc.tenantPath, form)
			assertEntraError(t, status, body, tc.wantStatus, tc.wantErr, tc.wantCode)
		})
	}
}

func TestCodeIsSingleUse(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.browse(t, consentURL(f.srv.URL, ContosoTenantID, scopeBoth, "s"), BrowseOptions{})
	code, verifier := f.signIn(t, ContosoTenantID, BrowseOptions{})
	if status, _, body := f.postToken(t, ContosoTenantID, codeForm(code, verifier)); status != 200 {
		t.Fatalf("first redemption: %d %v", status, body)
	}
	status, _, body := f.postToken(t, ContosoTenantID, codeForm(code, verifier))
	assertEntraError(t, status, body, 400, "invalid_grant", 54005)
}

func TestSignInAtOrganizationsWithBasicAuth(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.browse(t, consentURL(f.srv.URL, "organizations", scopeBoth, "s"), BrowseOptions{Username: FabrikamAdminUsername})
	code, verifier := f.signIn(t, "organizations", BrowseOptions{Username: FabrikamAdminUsername})
	form := codeForm(code, verifier)
	form.Del("client_secret")
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/organizations/oauth2/v2.0/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(DefaultClientID, DefaultClientSecret)
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	if resp.StatusCode != 200 {
		t.Fatalf("redeem: %d %v", resp.StatusCode, tok)
	}
	id := verifyJWT(t, f.jwks(t, "organizations"), tok["id_token"].(string))
	if id["tid"] != FabrikamTenantID || id["iss"] != f.srv.URL+"/"+FabrikamTenantID+"/v2.0" {
		t.Errorf("id token tid %v iss %v, want Fabrikam", id["tid"], id["iss"])
	}
}

func TestRefreshRotatesAndServesEveryConsentedResource(t *testing.T) {
	t.Parallel()
	f := setup(t)
	tok := f.connect(t, ContosoTenantID)
	rt1 := tok["refresh_token"].(string)
	set := f.jwks(t, ContosoTenantID)

	f.clock.Advance(30 * time.Minute)
	status, _, r2 := f.postToken(t, ContosoTenantID, refreshForm(rt1, scopeRefreshLake))
	if status != 200 {
		t.Fatalf("refresh: %d %v", status, r2)
	}
	rt2, _ := r2["refresh_token"].(string)
	if rt2 == "" || rt2 == rt1 {
		t.Fatalf("refresh token did not rotate: %q", rt2)
	}
	if r2["id_token"] != nil {
		t.Errorf("id_token without openid in the refresh scope")
	}
	at := verifyJWT(t, set, r2["access_token"].(string))
	if at["aud"] != SentinelPlatformResource || int64(at["iat"].(float64)) != testStart.Add(30*time.Minute).Unix() {
		t.Errorf("refreshed access token aud %v iat %v", at["aud"], at["iat"])
	}

	// The old refresh token stays valid until it expires, as in Entra;
	// the same grant serves the Defender MCP resource.
	status, _, r3 := f.postToken(t, ContosoTenantID, refreshForm(rt1, scopeRefreshMCP))
	if status != 200 {
		t.Fatalf("refresh with the previous token for Defender MCP: %d %v", status, r3)
	}
	at3 := verifyJWT(t, set, r3["access_token"].(string))
	if at3["aud"] != DefenderMCPResource || at3["scp"] != DefenderMCPPermission {
		t.Errorf("Defender token aud %v scp %v", at3["aud"], at3["scp"])
	}
	if r3["scope"] != DefenderMCPResource+"/"+DefenderMCPPermission+" offline_access" {
		t.Errorf("scope %q", r3["scope"])
	}

	st := f.e.Stats().Tenant(ContosoTenantID)
	if got := st.Grants["refresh_token"]; got.Count != 2 || !got.Last.Equal(testStart.Add(30*time.Minute)) {
		t.Errorf("refresh grants %+v, want 2, last at +30m", got)
	}
	sid, _ := verifyJWT(t, set, tok["id_token"].(string))["sid"].(string)
	if got := st.Sessions[sid]; sid == "" || len(st.Sessions) != 1 || got.Count != 2 {
		t.Errorf("refreshes per connection %v (sid %q), want 2 for the one sign-in", st.Sessions, sid)
	}
	if st.Resources[DefenderMCPResource].Count != 1 || st.Resources[SentinelPlatformResource].Count != 2 {
		t.Errorf("resources %v", st.Resources)
	}
}

func TestRefreshTokenExpiresAfterInactivity(t *testing.T) {
	t.Parallel()
	f := setup(t)
	rt := f.connect(t, ContosoTenantID)["refresh_token"].(string)
	f.clock.Advance(91 * 24 * time.Hour)
	status, _, body := f.postToken(t, ContosoTenantID, refreshForm(rt, scopeRefreshLake))
	assertEntraError(t, status, body, 400, "invalid_grant", 700082)
}

func TestRevokeGrants(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code       int
		wantStatus int
		wantErr    string
	}{
		{700082, 400, "invalid_grant"},
		{70043, 400, "invalid_grant"},
		{50173, 400, "invalid_grant"},
		{65001, 400, "invalid_grant"},
		{700016, 401, "invalid_client"},
	}
	for _, tc := range tests {
		t.Run(jsonString(tc.code), func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			rt := f.connect(t, ContosoTenantID)["refresh_token"].(string)
			other := f.connect(t, FabrikamTenantID)["refresh_token"].(string)
			f.e.RevokeGrants(ContosoTenantID, tc.code)
			for _, scope := range []string{scopeRefreshLake, scopeRefreshMCP} {
				status, _, body := f.postToken(t, ContosoTenantID, refreshForm(rt, scope))
				assertEntraError(t, status, body, tc.wantStatus, tc.wantErr, tc.code)
			}
			if status, _, body := f.postToken(t, FabrikamTenantID, refreshForm(other, scopeRefreshLake)); status != 200 {
				t.Errorf("another tenant's grant was revoked too: %d %v", status, body)
			}
			// Reconnecting gives a working grant again.
			fresh := f.connect(t, ContosoTenantID)["refresh_token"].(string)
			if status, _, body := f.postToken(t, ContosoTenantID, refreshForm(fresh, scopeRefreshLake)); status != 200 {
				t.Errorf("refresh after reconnect: %d %v", status, body)
			}
		})
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// pageOf fetches a page without following redirects.
func pageOf(t *testing.T, f *fixture, u string) (*http.Response, string) {
	t.Helper()
	c := f.srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func TestConsentOutcomes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		prepare  func(f *fixture)
		opts     BrowseOptions
		tenant   string
		wantErr  string
		wantCode string
	}{
		{name: "admin cancels", opts: BrowseOptions{Cancel: true}, tenant: ContosoTenantID, wantErr: "access_denied", wantCode: "AADSTS65004"},
		{name: "no Defender MCP service principal", tenant: FabrikamTenantID, wantErr: "invalid_client", wantCode: "AADSTS650052",
			prepare: func(f *fixture) { _ = f.e.SetDefenderMCPProvisioned(FabrikamTenantID, false) }},
		{name: "Defender fault", tenant: ContosoTenantID, wantErr: "invalid_client", wantCode: "AADSTS650052",
			prepare: func(f *fixture) { f.e.SetFault(Fault{TenantID: ContosoTenantID, Kind: FaultDefenderNotProvisioned}) }},
		{name: "AADSTS fault at consent", tenant: ContosoTenantID, wantErr: "access_denied", wantCode: "AADSTS90094",
			prepare: func(f *fixture) {
				f.e.SetFault(Fault{Target: EndpointConsent, Kind: FaultAADSTS, AADSTS: 90094, Error: "access_denied", Count: 1})
			}},
		{name: "granted", tenant: ContosoTenantID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			if tc.prepare != nil {
				tc.prepare(f)
			}
			q := f.browse(t, consentURL(f.srv.URL, tc.tenant, scopeBoth, "st"), tc.opts)
			if q.Get("state") != "st" {
				t.Errorf("state %q", q.Get("state"))
			}
			if tc.wantErr == "" {
				if q.Get("admin_consent") != "True" || q.Get("tenant") != tc.tenant || q.Get("scope") != scopeBoth {
					t.Errorf("callback %v", q)
				}
				return
			}
			if q.Get("error") != tc.wantErr || !strings.HasPrefix(q.Get("error_description"), tc.wantCode+": ") {
				t.Errorf("callback error %q %q, want %s %s", q.Get("error"), q.Get("error_description"), tc.wantErr, tc.wantCode)
			}
			if len(f.e.Consented(tc.tenant)) != 0 {
				t.Errorf("consent recorded despite the error")
			}
		})
	}
}

func TestPagesRefuseBadRequests(t *testing.T) {
	t.Parallel()
	f := setup(t)
	tests := []struct {
		name, url, wantCode string
	}{
		{"common is refused for admin consent", consentURL(f.srv.URL, "common", scopeBoth, "s"), "AADSTS90130"},
		{"unknown tenant", consentURL(f.srv.URL, "0c0c0c0c-0000-4000-8000-000000000000", scopeBoth, "s"), "AADSTS90002"},
		{"unknown client", strings.Replace(consentURL(f.srv.URL, ContosoTenantID, scopeBoth, "s"), DefaultClientID, "11111111-2222-3333-4444-555555555555", 1), "AADSTS700016"},
		{"unregistered redirect URI", strings.Replace(authorizeURL(f.srv.URL, ContosoTenantID, scopeSignIn, "s", "n", ""), url.QueryEscape(testRedirect), url.QueryEscape("https://evil.example/cb"), 1), "AADSTS50011"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := pageOf(t, f, tc.url)
			if resp.StatusCode != 400 || !strings.Contains(body, tc.wantCode+":") || resp.Header.Get("Location") != "" {
				t.Errorf("got %d %q, want a 400 error page with %s", resp.StatusCode, body, tc.wantCode)
			}
		})
	}
	// A missing response_type is sent back to the (valid) redirect URI.
	u := strings.Replace(authorizeURL(f.srv.URL, ContosoTenantID, scopeSignIn, "s", "n", ""), "response_type=code", "response_type=token", 1)
	resp, _ := pageOf(t, f, u)
	if loc := resp.Header.Get("Location"); resp.StatusCode != 302 || !strings.Contains(loc, "error=unsupported_response_type") || !strings.Contains(loc, "state=s") {
		t.Errorf("response_type=token: %d %s", resp.StatusCode, loc)
	}
}

func TestSignInPageListsTheTenantsAccounts(t *testing.T) {
	t.Parallel()
	f := setup(t)
	_, body := pageOf(t, f, authorizeURL(f.srv.URL, ContosoTenantID, scopeSignIn, "s", "n", "x"))
	for _, want := range []string{ContosoAdminUsername, ContosoAnalystUsername, `id="accept"`, `id="cancel"`, "<label", "Permissions requested"} {
		if !strings.Contains(body, want) {
			t.Errorf("sign-in page lacks %q", want)
		}
	}
	if strings.Contains(body, FabrikamAdminUsername) {
		t.Errorf("sign-in page of Contoso lists a Fabrikam account")
	}
}

func TestSignInFaults(t *testing.T) {
	t.Parallel()
	t.Run("wrong tenant sign-in", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		f.browse(t, consentURL(f.srv.URL, ContosoTenantID, scopeBoth, "s"), BrowseOptions{})
		f.e.SetFault(Fault{TenantID: ContosoTenantID, Kind: FaultWrongTenantSignIn, Count: 1})
		code, verifier := f.signIn(t, ContosoTenantID, BrowseOptions{})
		status, _, tok := f.postToken(t, ContosoTenantID, codeForm(code, verifier))
		if status != 200 {
			t.Fatalf("redeem: %d %v", status, tok)
		}
		id := verifyJWT(t, f.jwks(t, ContosoTenantID), tok["id_token"].(string))
		if id["tid"] != FabrikamTenantID || id["preferred_username"] != FabrikamAdminUsername {
			t.Errorf("id token tid %v user %v, want a Fabrikam account", id["tid"], id["preferred_username"])
		}
	})
	t.Run("no refresh token", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		f.e.SetFault(Fault{Kind: FaultNoRefreshToken, Count: 1})
		tok := f.connect(t, ContosoTenantID)
		if _, ok := tok["refresh_token"]; ok {
			t.Errorf("refresh_token present despite the fault")
		}
		if tok["access_token"] == nil || tok["id_token"] == nil {
			t.Errorf("token answer %v", tok)
		}
	})
	t.Run("AADSTS at sign-in", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		f.e.SetFault(Fault{Target: EndpointAuthorize, Kind: FaultAADSTS, AADSTS: 53003})
		q := f.browse(t, authorizeURL(f.srv.URL, ContosoTenantID, scopeSignIn, "s", "n", "c"), BrowseOptions{})
		if q.Get("error") != "access_denied" || !strings.HasPrefix(q.Get("error_description"), "AADSTS53003: ") || q.Get("state") != "s" {
			t.Errorf("callback %v", q)
		}
	})
	t.Run("AADSTS on refresh only", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		f.e.SetFault(Fault{Target: EndpointToken, GrantType: "refresh_token", Kind: FaultAADSTS, AADSTS: 50173})
		rt := f.connect(t, ContosoTenantID)["refresh_token"].(string)
		status, _, body := f.postToken(t, ContosoTenantID, refreshForm(rt, scopeRefreshLake))
		assertEntraError(t, status, body, 400, "invalid_grant", 50173)
	})
	t.Run("Defender MCP token without service principal", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		rt := f.connect(t, ContosoTenantID)["refresh_token"].(string)
		_ = f.e.SetDefenderMCPProvisioned(ContosoTenantID, false)
		status, _, body := f.postToken(t, ContosoTenantID, refreshForm(rt, scopeRefreshMCP))
		assertEntraError(t, status, body, 401, "invalid_client", 650052)
		if status, _, body := f.postToken(t, ContosoTenantID, refreshForm(rt, scopeRefreshLake)); status != 200 {
			t.Errorf("data lake token failed too: %d %v", status, body)
		}
	})
	t.Run("sign-in cancelled", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		q := f.browse(t, authorizeURL(f.srv.URL, ContosoTenantID, scopeSignIn, "s", "n", "c"), BrowseOptions{Cancel: true})
		if q.Get("error") != "access_denied" {
			t.Errorf("callback %v", q)
		}
	})
}

func TestDiscovery(t *testing.T) {
	t.Parallel()
	f := setup(t)
	resp, err := f.srv.Client().Get(f.srv.URL + "/" + ContosoTenantID + "/v2.0/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var meta map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&meta)
	resp.Body.Close()
	base := f.srv.URL + "/" + ContosoTenantID
	for k, want := range map[string]string{
		"issuer":                 base + "/v2.0",
		"token_endpoint":         base + "/oauth2/v2.0/token",
		"authorization_endpoint": base + "/oauth2/v2.0/authorize",
		"jwks_uri":               base + "/discovery/v2.0/keys",
	} {
		if meta[k] != want {
			t.Errorf("%s = %v, want %s", k, meta[k], want)
		}
	}
	set := f.jwks(t, ContosoTenantID)
	if len(set.Keys) != 1 || set.Keys[0].Use != "sig" || len(set.Keys[0].Certificates) != 1 {
		t.Errorf("JWKS %+v", set.Keys)
	}
	tok, err := f.e.AccessToken(f.srv.URL, ContosoTenantID, "", SentinelPlatformResource)
	if err != nil {
		t.Fatal(err)
	}
	if c := verifyJWT(t, set, tok); c["oid"] != ContosoAdminOID {
		t.Errorf("AccessToken oid %v", c["oid"])
	}
}

func TestTokenEndpointHTTPFaults(t *testing.T) {
	t.Parallel()
	t.Run("throttle then recover", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		rt := f.connect(t, ContosoTenantID)["refresh_token"].(string)
		f.e.SetFault(Fault{TenantID: ContosoTenantID, Target: EndpointToken, Kind: FaultThrottle, RetryAfter: 30 * time.Second, Count: 1})
		status, h, body := f.postToken(t, ContosoTenantID, refreshForm(rt, scopeRefreshLake))
		if status != 429 || h.Get("Retry-After") != "30" || body["error"] != "temporarily_unavailable" {
			t.Errorf("got %d Retry-After %q %v", status, h.Get("Retry-After"), body)
		}
		if status, _, _ := f.postToken(t, ContosoTenantID, refreshForm(rt, scopeRefreshLake)); status != 200 {
			t.Errorf("after the one-off throttle: %d", status)
		}
	})
	t.Run("server error", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		f.e.SetFault(Fault{Target: EndpointToken, Kind: FaultServerError, Status: 502})
		status, _, _ := f.postToken(t, ContosoTenantID, refreshForm("x", scopeRefreshLake))
		if status != 502 {
			t.Errorf("status %d, want 502", status)
		}
	})
	t.Run("truncated body", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		rt := f.connect(t, ContosoTenantID)["refresh_token"].(string)
		f.e.SetFault(Fault{Target: EndpointToken, Kind: FaultTruncate, Count: 1})
		status, _, body := f.postToken(t, ContosoTenantID, refreshForm(rt, scopeRefreshLake))
		if status != 200 || body["_raw"] == nil {
			t.Errorf("got %d %v, want 200 with invalid JSON", status, body)
		}
	})
	t.Run("delay honours the client's deadline", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		f.e.SetFault(Fault{Target: EndpointKeys, Kind: FaultDelay, Delay: time.Hour})
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.srv.URL+"/"+ContosoTenantID+"/discovery/v2.0/keys", nil)
		_, err := f.srv.Client().Do(req)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("got %v, want the client's deadline", err)
		}
	})
}

func TestAccessTokenSignedByAnotherKeyIsRejectedByJWKS(t *testing.T) {
	t.Parallel()
	f := setup(t)
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: other, KeyID: f.e.keys.kid}}, nil)
	forged, _ := jwt.Signed(signer).Claims(map[string]any{"aud": SentinelPlatformResource}).Serialize()
	tok, _ := jwt.ParseSigned(forged, []jose.SignatureAlgorithm{jose.RS256})
	var c map[string]any
	if err := tok.Claims(f.jwks(t, ContosoTenantID).Keys[0].Key, &c); err == nil {
		t.Fatal("a token signed by another key verified against the JWKS")
	}
}

func TestBrowserRefusesAnAccountThePageDoesNotOffer(t *testing.T) {
	t.Parallel()
	f := setup(t)
	_, err := NewBrowser(f.srv.Client()).ClickThrough(context.Background(),
		authorizeURL(f.srv.URL, ContosoTenantID, scopeSignIn, "s", "n", "c"),
		BrowseOptions{Username: FabrikamAdminUsername, Stop: stopAtCallback})
	if err == nil || !strings.Contains(err.Error(), "not offered") {
		t.Errorf("got %v, want an error naming the missing account", err)
	}
}
