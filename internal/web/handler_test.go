package web_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/clarion/sentinel/internal/app"
	"github.com/clarion/sentinel/internal/config"
	"github.com/clarion/sentinel/internal/emulator"
	"github.com/clarion/sentinel/internal/store"
)

// These tests speak HTTP to the UI without a browser: the rules a browser
// cannot show by itself (what is refused, what each cookie and header is).

const authority = "https://login.microsoftonline.example"

func httpSetup(t *testing.T, publicURL string) (*app.App, *httptest.Server, store.Workspace) {
	t.Helper()
	cfg := config.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.PublicURL = publicURL
	cfg.EntraAuthority = authority
	cfg.ClientID, cfg.ClientSecret = emulator.DefaultClientID, emulator.DefaultClientSecret
	if err := cfg.Finish(); err != nil {
		t.Fatal(err)
	}
	a, err := app.New(t.Context(), cfg, slog.New(slog.DiscardHandler), app.Options{AutoMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	w, _, err := a.CreateWorkspace(t.Context(), "SOC")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Auth.CreateUser(t.Context(), w.ID, userEmail, userPassword); err != nil {
		t.Fatal(err)
	}
	return a, srv, w
}

var hiddenRE = regexp.MustCompile(`name="(csrf_token|login_csrf)" value="([^"]+)"`)

// hidden returns a form's anti-forgery token from a page.
func hidden(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, _ := io.ReadAll(resp.Body)
	m := hiddenRE.FindSubmatch(b)
	if m == nil {
		t.Fatalf("no anti-forgery field in %s", resp.Request.URL)
	}
	return string(m[2])
}

func browserLike(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func post(t *testing.T, c *http.Client, u string, form url.Values, header ...string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// signInHTTP signs in through the form and returns the session's CSRF token.
func signInHTTP(t *testing.T, c *http.Client, base string) string {
	t.Helper()
	tok := hidden(t, getOK(t, c, base+"/login"))
	resp := post(t, c, base+"/login", url.Values{"login_csrf": {tok}, "email": {userEmail}, "password": {userPassword}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in: %d", resp.StatusCode)
	}
	return hidden(t, getOK(t, c, base+"/integrations"))
}

// TestEveryPOSTChecksTheCSRFToken: a form post without the session's
// token, with another token, or from another site changes nothing.
func TestEveryPOSTChecksTheCSRFToken(t *testing.T) {
	t.Parallel()
	a, srv, w := httpSetup(t, "")
	if err := a.Store.UpsertConnection(t.Context(), store.Connection{WorkspaceID: w.ID, TenantID: emulator.ContosoTenantID,
		RefreshTokenEnc: []byte{1}, ConnectedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	m := (&env{t: t, app: a, workspaceID: w.ID}).addMonitor("Sentinel", emulator.ContosoWorkspaceID)
	c := browserLike(t)
	csrf := signInHTTP(t, c, srv.URL)

	posts := []string{
		"/logout",
		"/integrations/sentinel/connect",
		"/integrations/sentinel/disconnect",
		"/integrations/sentinel/monitors",
		"/integrations/sentinel/monitors/" + m.ID + "/edit",
		"/integrations/sentinel/monitors/" + m.ID + "/delete",
	}
	for _, p := range posts {
		for name, form := range map[string]url.Values{
			"no token":    {"name": {"x"}},
			"wrong token": {"csrf_token": {csrf + "x"}, "name": {"x"}},
			"empty token": {"csrf_token": {""}, "name": {"x"}},
		} {
			if resp := post(t, c, srv.URL+p, form); resp.StatusCode != http.StatusForbidden {
				t.Errorf("POST %s with %s: %d, want 403", p, name, resp.StatusCode)
			}
		}
		// The right token from another site: refused too.
		resp := post(t, c, srv.URL+p, url.Values{"csrf_token": {csrf}}, "Sec-Fetch-Site", "cross-site")
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("cross-site POST %s: %d, want 403", p, resp.StatusCode)
		}
	}
	// Nothing changed: still signed in, connected, with the monitor.
	getOK(t, c, srv.URL+"/integrations")
	if _, err := a.Integration.GetMonitor(t.Context(), w.ID, m.ID); err != nil {
		t.Fatalf("monitor: %v", err)
	}
	if _, err := a.Store.GetConnection(t.Context(), w.ID); err != nil {
		t.Fatalf("connection: %v", err)
	}
	// With the token, the same post works.
	resp := post(t, c, srv.URL+"/integrations/sentinel/monitors/"+m.ID+"/delete", url.Values{"csrf_token": {csrf}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("delete with the token: %d", resp.StatusCode)
	}
}

// TestSignInFormIsProtectedToo: the sign-in form carries a double-submit
// token (there is no session yet); without it nobody is signed in.
func TestSignInFormIsProtectedToo(t *testing.T) {
	t.Parallel()
	_, srv, _ := httpSetup(t, "")
	c := browserLike(t)
	resp := post(t, c, srv.URL+"/login", url.Values{"email": {userEmail}, "password": {userPassword}, "login_csrf": {"guess"}})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("sign-in without the form's cookie: %d, want 403", resp.StatusCode)
	}
	for _, ck := range resp.Cookies() {
		if strings.Contains(ck.Name, "session") && ck.Value != "" {
			t.Fatalf("a session cookie was set: %s", ck.Name)
		}
	}
	resp = post(t, c, srv.URL+"/login", url.Values{"email": {userEmail}, "password": {userPassword}}, "Sec-Fetch-Site", "cross-site")
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site sign-in: %d, want 403", resp.StatusCode)
	}
}

// TestSessionCookieIsSecureOverHTTPS: with an https PublicURL the session
// cookie is Secure, HttpOnly, SameSite=Lax and __Host- prefixed.
func TestSessionCookieIsSecureOverHTTPS(t *testing.T) {
	t.Parallel()
	_, srv, _ := httpSetup(t, "https://clarion.example")
	c := browserLike(t)
	resp := getOK(t, c, srv.URL+"/login")
	tok := hidden(t, resp)
	var loginCookie *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "clarion_login" {
			loginCookie = ck
		}
	}
	if loginCookie == nil || !loginCookie.Secure || !loginCookie.HttpOnly || loginCookie.SameSite != http.SameSiteLaxMode {
		t.Fatalf("sign-in form cookie = %+v, want Secure, HttpOnly, Lax", loginCookie)
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/login",
		strings.NewReader(url.Values{"login_csrf": {tok}, "email": {userEmail}, "password": {userPassword}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: "clarion_login", Value: tok}) // the jar keeps Secure cookies off http
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var session *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "__Host-clarion_session" {
			session = ck
		}
	}
	if resp.StatusCode != http.StatusSeeOther || session == nil {
		t.Fatalf("sign in: %d, cookies %v", resp.StatusCode, resp.Header.Values("Set-Cookie"))
	}
	if !session.Secure || !session.HttpOnly || session.SameSite != http.SameSiteLaxMode || session.Path != "/" || session.Domain != "" {
		t.Fatalf("session cookie = %+v", session)
	}
}

// TestPagesSendSecurityHeaders: a strict Content-Security-Policy (scripts
// and styles from Clarion only; forms to Clarion and the Entra authority),
// no framing, no sniffing; static files are cached by version.
func TestPagesSendSecurityHeaders(t *testing.T) {
	t.Parallel()
	_, srv, _ := httpSetup(t, "")
	resp := getOK(t, browserLike(t), srv.URL+"/login")
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "form-action 'self' " + authority} {
		contains(t, "CSP", csp, want)
	}
	if strings.Contains(csp, "unsafe-inline") {
		t.Fatalf("CSP allows inline code: %s", csp)
	}
	mustEqual(t, "X-Frame-Options", resp.Header.Get("X-Frame-Options"), "DENY")
	mustEqual(t, "X-Content-Type-Options", resp.Header.Get("X-Content-Type-Options"), "nosniff")
	mustEqual(t, "Cache-Control", resp.Header.Get("Cache-Control"), "no-store")

	// Static files: versioned links are cached for long, the rest revalidated.
	page := getOK(t, browserLike(t), srv.URL+"/login")
	b, _ := io.ReadAll(page.Body)
	m := regexp.MustCompile(`href="(/static/app\.css\?v=[0-9a-f]+)"`).FindSubmatch(b)
	if m == nil {
		t.Fatal("the page links no versioned stylesheet")
	}
	css := getOK(t, browserLike(t), srv.URL+string(m[1]))
	mustEqual(t, "versioned Cache-Control", css.Header.Get("Cache-Control"), "public, max-age=31536000, immutable")
	contains(t, "Content-Type", css.Header.Get("Content-Type"), "text/css")
	plain := getOK(t, browserLike(t), srv.URL+"/static/app.css")
	mustEqual(t, "unversioned Cache-Control", plain.Header.Get("Cache-Control"), "no-cache")
}

// TestSignedOutRequests: pages send a signed-out browser to the sign-in
// page (and back afterwards); posts are refused; the alert stream answers
// 401 so that EventSource stops.
func TestSignedOutRequests(t *testing.T) {
	t.Parallel()
	_, srv, _ := httpSetup(t, "")
	c := browserLike(t)
	resp, err := c.Get(srv.URL + "/alerts?severity=high")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	mustEqual(t, "status", resp.StatusCode, http.StatusSeeOther)
	mustEqual(t, "location", resp.Header.Get("Location"), "/login?next="+url.QueryEscape("/alerts?severity=high"))
	resp, err = c.Get(srv.URL + "/alerts/stream")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	mustEqual(t, "stream status", resp.StatusCode, http.StatusUnauthorized)
	if resp := post(t, c, srv.URL+"/integrations/sentinel/disconnect", url.Values{}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("signed-out POST: %d", resp.StatusCode)
	}
	// A redirect target after sign-in is a local path only.
	tok := hidden(t, getOK(t, c, srv.URL+"/login?next=//evil.example/x"))
	resp = post(t, c, srv.URL+"/login", url.Values{"login_csrf": {tok}, "email": {userEmail}, "password": {userPassword}, "next": {"https://evil.example/"}})
	mustEqual(t, "after sign-in", resp.Header.Get("Location"), "/integrations")
}

// recorder stands for testing.TB in TestRequireChromium.
type recorder struct{ skipped, failed string }

func (r *recorder) Helper()                      {}
func (r *recorder) Skipf(f string, args ...any)  { r.skipped = fmt.Sprintf(f, args...) }
func (r *recorder) Fatalf(f string, args ...any) { r.failed = fmt.Sprintf(f, args...) }
func (r *recorder) String() string               { return "skipped=" + r.skipped + " failed=" + r.failed }

func missing() (string, bool) { return "", false }
func found() (string, bool)   { return "/usr/bin/chromium", true }

// TestRequireChromium: without Chromium the browser tests fail under
// CI=true and are skipped, with a message saying how to install it,
// otherwise.
func TestRequireChromium(t *testing.T) {
	t.Parallel()
	var ci recorder
	requireChromium(&ci, missing, "true")
	if ci.failed == "" || ci.skipped != "" || !strings.Contains(ci.failed, "apt-get install chromium") {
		t.Fatalf("under CI: %s", ci.String())
	}
	var local recorder
	requireChromium(&local, missing, "")
	if local.skipped == "" || local.failed != "" || !strings.Contains(local.skipped, "Chromium not found") {
		t.Fatalf("locally: %s", local.String())
	}
	var ok recorder
	if p := requireChromium(&ok, found, "true"); p != "/usr/bin/chromium" || ok.skipped != "" || ok.failed != "" {
		t.Fatalf("with Chromium: %q %s", p, ok.String())
	}
}

// TestAlertsArePaged: the list shows the newest page and links the older
// alerts; an older page links back to the newest and is not live.
func TestAlertsArePaged(t *testing.T) {
	t.Parallel()
	a, srv, w := httpSetup(t, "")
	ctx := t.Context()
	if err := a.Store.UpsertConnection(ctx, store.Connection{WorkspaceID: w.ID, TenantID: emulator.ContosoTenantID,
		RefreshTokenEnc: []byte{1}, ConnectedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	m := (&env{t: t, app: a, workspaceID: w.ID}).addMonitor("Sentinel", emulator.ContosoWorkspaceID)
	now := time.Now().UTC()
	if _, ok, err := a.Store.ClaimPoll(ctx, m.ID, "test", now.Add(time.Minute), now.Add(2*time.Minute)); !ok || err != nil {
		t.Fatalf("claim: %v %v", ok, err)
	}
	var page []store.Alert
	for i := range 55 {
		page = append(page, store.Alert{ID: store.NewID(), IncidentID: fmt.Sprintf("incident-%02d", i), Title: fmt.Sprintf("Alert %02d", i),
			Severity: "high", IngestedAt: now.Add(time.Duration(i) * time.Second), Payload: []byte(`{}`)})
	}
	if _, err := a.Store.CommitPage(ctx, m.ID, "test", page, store.Progress{}); err != nil {
		t.Fatal(err)
	}
	c := browserLike(t)
	signInHTTP(t, c, srv.URL)
	rows := regexp.MustCompile(`<a class="alert-title" href="/alerts/[^"]+">(Alert \d+)</a>`)
	first := getOK(t, c, srv.URL+"/alerts")
	b, _ := io.ReadAll(first.Body)
	got := rows.FindAllSubmatch(b, -1)
	if len(got) != 50 || string(got[0][1]) != "Alert 54" || string(got[49][1]) != "Alert 05" {
		t.Fatalf("first page: %d rows", len(got))
	}
	contains(t, "first page", string(b), `data-stream="/alerts/stream?after=`)
	older := regexp.MustCompile(`href="([^"]+)" id="older-alerts"`).FindSubmatch(b)
	if older == nil {
		t.Fatal("no link to older alerts")
	}
	next := getOK(t, c, srv.URL+strings.ReplaceAll(string(older[1]), "&amp;", "&"))
	b, _ = io.ReadAll(next.Body)
	got = rows.FindAllSubmatch(b, -1)
	if len(got) != 5 || string(got[0][1]) != "Alert 04" || string(got[4][1]) != "Alert 00" {
		t.Fatalf("second page: %d rows", len(got))
	}
	contains(t, "second page", string(b), `id="newest-alerts"`)
	if strings.Contains(string(b), "data-stream") || strings.Contains(string(b), `id="older-alerts"`) {
		t.Fatal("the last, older page is live or links further")
	}
}
