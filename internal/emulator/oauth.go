package emulator

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// pendingFlow is a consent or sign-in page waiting for its form to be
// submitted; the page carries only its id (ctx), as Entra's pages do.
type pendingFlow struct {
	kind        string // EndpointConsent or EndpointAuthorize
	pathTenant  string // tenant GUID (lower case), "organizations" or "common"
	clientID    string
	redirectURI string
	state       string
	scope       string
	nonce       string
	challenge   string
	method      string
	created     time.Time
}

// authCode is an issued authorization code.
type authCode struct {
	clientID    string
	redirectURI string
	pathTenant  string
	tenantID    string // the tenant of the signed-in account (tid of the tokens)
	user        User
	scope       scopeRequest
	nonce       string
	challenge   string
	method      string
	expires     time.Time
	used        bool
	wrongTenant bool // issued under the WrongTenantSignIn fault
}

// randomToken returns an opaque value shaped like Entra's codes and
// refresh tokens ("0.A" followed by base64url data).
func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return "0.A" + base64.RawURLEncoding.EncodeToString(b)
}

// redirectAllowed checks a redirect URI against the app registration.
// Loopback URIs match whatever their port, as in Entra.
func (e *Emulator) redirectAllowed(uri string) bool {
	u, err := url.Parse(uri)
	if err != nil || u.Fragment != "" || u.Scheme == "" || u.Host == "" {
		return false
	}
	if len(e.cfg.RedirectURIs) == 0 {
		return u.Scheme == "http" && isLoopbackHost(u.Hostname())
	}
	for _, reg := range e.cfg.RedirectURIs {
		if reg == uri {
			return true
		}
		ru, err := url.Parse(reg)
		if err != nil || !isLoopbackHost(ru.Hostname()) || !isLoopbackHost(u.Hostname()) {
			continue
		}
		if ru.Scheme == u.Scheme && ru.Hostname() == u.Hostname() && ru.Path == u.Path && ru.RawQuery == u.RawQuery {
			return true
		}
	}
	return false
}

func isLoopbackHost(h string) bool {
	return h == "127.0.0.1" || h == "localhost" || h == "::1"
}

// checkClientAndRedirect validates client_id and redirect_uri of a page
// request. Failures are shown on an error page, never redirected: the
// redirect URI cannot be trusted yet.
func (e *Emulator) checkClientAndRedirect(w http.ResponseWriter, r *http.Request, tenantSeg, clientID, redirectURI string) bool {
	switch {
	case clientID == "":
		e.errorPage(w, r, entraErr(http.StatusBadRequest, "invalid_request", 900144, "client_id"))
	case clientID != e.cfg.ClientID:
		e.errorPage(w, r, entraErr(http.StatusBadRequest, "unauthorized_client", 700016, clientID, tenantSeg))
	case redirectURI == "":
		e.errorPage(w, r, entraErr(http.StatusBadRequest, "invalid_request", 900144, "redirect_uri"))
	case !e.redirectAllowed(redirectURI):
		e.errorPage(w, r, entraErr(http.StatusBadRequest, "invalid_request", 50011, redirectURI, e.cfg.ClientID))
	default:
		return true
	}
	return false
}

// pathTenant resolves the {tenant} path segment of a page request:
// a configured tenant GUID, "organizations" or "common" (when allowed).
func (e *Emulator) pathTenant(w http.ResponseWriter, r *http.Request, allowCommon bool) (string, bool) {
	seg := strings.ToLower(r.PathValue("tenant"))
	switch seg {
	case "organizations":
		return seg, true
	case "common":
		if allowCommon {
			return seg, true
		}
		e.count(seg, endpointOf(r))
		e.errorPage(w, r, entraErr(http.StatusBadRequest, "invalid_request", 90130, e.cfg.AppName, e.cfg.ClientID))
		return "", false
	}
	e.mu.Lock()
	t := e.tenant(seg)
	e.mu.Unlock()
	if t == nil {
		e.count(seg, endpointOf(r))
		e.errorPage(w, r, entraErr(http.StatusBadRequest, "invalid_tenant", 90002, r.PathValue("tenant")))
		return "", false
	}
	return t.ID, true
}

func endpointOf(r *http.Request) string {
	switch p := r.URL.Path; {
	case strings.HasSuffix(p, "/adminconsent"):
		return EndpointConsent
	case strings.HasSuffix(p, "/authorize"):
		return EndpointAuthorize
	case strings.HasSuffix(p, "/token"):
		return EndpointToken
	}
	return endpointFor(r)
}

// accountsFor lists the accounts a page offers: the tenant's, or every
// tenant's for organizations/common.
func (e *Emulator) accountsFor(pathTenant, preferred string) []pageAccount {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []pageAccount
	for _, id := range e.order {
		t := e.tenants[id]
		if pathTenant != id && isGUID(pathTenant) {
			continue
		}
		for _, u := range t.Users {
			out = append(out, pageAccount{Username: u.Username, DisplayName: u.DisplayName, TenantName: t.Name,
				Selected: preferred != "" && strings.EqualFold(u.Username, preferred)})
		}
	}
	if len(out) > 0 && !slices.ContainsFunc(out, func(a pageAccount) bool { return a.Selected }) {
		out[0].Selected = true
	}
	return out
}

// pickUser finds the account chosen on a page: by username among the
// accounts the page offered, or the first of them.
func (e *Emulator) pickUser(pathTenant, username string) (*tenantState, User, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var firstT *tenantState
	var first User
	for _, id := range e.order {
		t := e.tenants[id]
		if pathTenant != id && isGUID(pathTenant) {
			continue
		}
		for _, u := range t.Users {
			if firstT == nil {
				firstT, first = t, u
			}
			if username != "" && strings.EqualFold(u.Username, username) {
				return t, u, true
			}
		}
	}
	return firstT, first, firstT != nil
}

func (e *Emulator) newPending(f *pendingFlow) string {
	id := randomToken(24)
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	for k, p := range e.pending {
		if now.Sub(p.created) > pendingTTL {
			delete(e.pending, k)
		}
	}
	f.created = now
	e.pending[id] = f
	return id
}

func (e *Emulator) takePending(id, kind string) *pendingFlow {
	e.mu.Lock()
	defer e.mu.Unlock()
	f := e.pending[id]
	if f == nil || f.kind != kind || e.now().Sub(f.created) > pendingTTL {
		return nil
	}
	delete(e.pending, id)
	return f
}

// ---- admin consent ----

func (e *Emulator) handleConsentPage(w http.ResponseWriter, r *http.Request) {
	pathTenant, ok := e.pathTenant(w, r, false)
	if !ok {
		return
	}
	q := r.URL.Query()
	e.count(pathTenant, EndpointConsent)
	if e.applyHTTPFaults(w, r, pathTenant, EndpointConsent, "", styleHTML) {
		return
	}
	if !e.checkClientAndRedirect(w, r, pathTenant, q.Get("client_id"), q.Get("redirect_uri")) {
		return
	}
	if strings.TrimSpace(q.Get("scope")) == "" {
		e.redirectError(w, r, q.Get("redirect_uri"), q.Get("state"), entraErr(0, "invalid_request", 900144, "scope"))
		return
	}
	f := &pendingFlow{kind: EndpointConsent, pathTenant: pathTenant, clientID: q.Get("client_id"),
		redirectURI: q.Get("redirect_uri"), state: q.Get("state"), scope: q.Get("scope")}
	ctx := e.newPending(f)
	e.renderPage(w, http.StatusOK, "consent.html", pageData{
		Kind:        "consent",
		Title:       "Permissions requested",
		Action:      r.URL.Path,
		Ctx:         ctx,
		AppName:     e.cfg.AppName,
		ClientID:    e.cfg.ClientID,
		Accounts:    e.accountsFor(pathTenant, q.Get("login_hint")),
		Permissions: permissionsFor(parseScopes(f.scope)),
	})
}

func (e *Emulator) handleConsentSubmit(w http.ResponseWriter, r *http.Request) {
	f, t, _, ok := e.submitted(w, r, EndpointConsent, false)
	if !ok {
		return
	}
	sr := parseScopes(f.scope)
	if ee := e.grantConsent(t.ID, EndpointConsent, sr); ee != nil {
		e.redirectError(w, r, f.redirectURI, f.state, ee)
		return
	}
	q := url.Values{}
	q.Set("admin_consent", "True")
	q.Set("tenant", t.ID)
	q.Set("scope", f.scope)
	if f.state != "" {
		q.Set("state", f.state)
	}
	http.Redirect(w, r, appendQuery(f.redirectURI, q), http.StatusFound)
}

// grantConsent records the tenant's consent to every resource of sr, or
// returns the error Entra gives: AADSTS650052 when the Defender MCP
// resource has no service principal in the tenant, AADSTS650057 for a
// resource the app registration does not list.
func (e *Emulator) grantConsent(tenantID, target string, sr scopeRequest) *entraError {
	if len(sr.unknown) > 0 {
		return entraErr(0, "invalid_client", 650057, sr.unknown[0])
	}
	for _, res := range sr.resources {
		info := lookupResource(res)
		if info.needsServicePrincipal && e.defenderMissing(tenantID, target) {
			return entraErr(0, "invalid_client", 650052, res, tenantID)
		}
		if _, bad, ok := grantedPerms(res, sr.perms[res]); !ok {
			return entraErr(0, "invalid_scope", 70011, res+"/"+bad)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.tenant(tenantID)
	for _, res := range sr.resources {
		t.consented[res] = true
	}
	t.consented[GraphResource] = true
	return nil
}

// defenderMissing reports whether the tenant lacks the Defender MCP
// service principal, by configuration or by a defender_not_provisioned
// fault (which this consumes).
func (e *Emulator) defenderMissing(tenantID, target string) bool {
	e.mu.Lock()
	t := e.tenant(tenantID)
	missing := t == nil || !t.DefenderMCPProvisioned
	e.mu.Unlock()
	return missing || e.takeStateFault(tenantID, target, FaultDefenderNotProvisioned)
}

// ---- sign-in (authorization code with PKCE) ----

func (e *Emulator) handleAuthorizePage(w http.ResponseWriter, r *http.Request) {
	pathTenant, ok := e.pathTenant(w, r, true)
	if !ok {
		return
	}
	q := r.URL.Query()
	e.count(pathTenant, EndpointAuthorize)
	if e.applyHTTPFaults(w, r, pathTenant, EndpointAuthorize, "", styleHTML) {
		return
	}
	if !e.checkClientAndRedirect(w, r, pathTenant, q.Get("client_id"), q.Get("redirect_uri")) {
		return
	}
	redirectURI, state := q.Get("redirect_uri"), q.Get("state")
	switch rt := q.Get("response_type"); {
	case rt == "":
		e.redirectError(w, r, redirectURI, state, entraErr(0, "invalid_request", 900144, "response_type"))
		return
	case rt != "code":
		e.redirectError(w, r, redirectURI, state, entraErr(0, "unsupported_response_type", 700054, rt))
		return
	}
	if strings.TrimSpace(q.Get("scope")) == "" {
		e.redirectError(w, r, redirectURI, state, entraErr(0, "invalid_request", 900144, "scope"))
		return
	}
	method := q.Get("code_challenge_method")
	if q.Get("code_challenge") != "" {
		if method == "" {
			method = "plain"
		}
		if method != "S256" && method != "plain" {
			e.redirectError(w, r, redirectURI, state, entraErr(0, "invalid_request", 501491, method))
			return
		}
	}
	if q.Get("prompt") == "none" {
		e.redirectError(w, r, redirectURI, state, entraErr(0, "login_required", 50058))
		return
	}
	f := &pendingFlow{kind: EndpointAuthorize, pathTenant: pathTenant, clientID: q.Get("client_id"),
		redirectURI: redirectURI, state: state, scope: q.Get("scope"), nonce: q.Get("nonce"),
		challenge: q.Get("code_challenge"), method: method}
	ctx := e.newPending(f)
	sr := parseScopes(f.scope)
	var perms []pagePermission
	if e.needsConsent(pathTenant, sr) {
		perms = permissionsFor(sr)
	}
	e.renderPage(w, http.StatusOK, "signin.html", pageData{
		Kind:        "signin",
		Title:       "Sign in to your account",
		Action:      r.URL.Path,
		Ctx:         ctx,
		AppName:     e.cfg.AppName,
		ClientID:    e.cfg.ClientID,
		Accounts:    e.accountsFor(pathTenant, q.Get("login_hint")),
		Permissions: perms,
	})
}

// needsConsent reports whether a tenant the page may sign in to has not
// yet consented to a resource of the request.
func (e *Emulator) needsConsent(pathTenant string, sr scopeRequest) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, id := range e.order {
		if isGUID(pathTenant) && id != pathTenant {
			continue
		}
		for _, res := range sr.resources {
			if !e.tenants[id].consented[res] {
				return true
			}
		}
	}
	return false
}

func (e *Emulator) handleAuthorizeSubmit(w http.ResponseWriter, r *http.Request) {
	f, t, user, ok := e.submitted(w, r, EndpointAuthorize, true)
	if !ok {
		return
	}
	sr := parseScopes(f.scope)
	tenantID := t.ID
	wrong := false
	if e.takeStateFault(t.ID, EndpointAuthorize, FaultWrongTenantSignIn) {
		// The id token will carry another tenant: the admin signed in with
		// an account of a different directory.
		tenantID, user = e.otherTenantUser(t.ID)
		wrong = true
	} else if ee := e.grantConsent(t.ID, EndpointAuthorize, sr); ee != nil {
		e.redirectError(w, r, f.redirectURI, f.state, ee)
		return
	}
	code := randomToken(96)
	e.mu.Lock()
	now := e.now()
	for k, c := range e.codes {
		if now.After(c.expires.Add(time.Hour)) {
			delete(e.codes, k)
		}
	}
	e.codes[code] = &authCode{
		clientID: f.clientID, redirectURI: f.redirectURI, pathTenant: f.pathTenant, tenantID: tenantID,
		user: user, scope: sr, nonce: f.nonce, challenge: f.challenge, method: f.method,
		expires: now.Add(authCodeTTL), wrongTenant: wrong,
	}
	e.mu.Unlock()
	q := url.Values{}
	q.Set("code", code)
	if f.state != "" {
		q.Set("state", f.state)
	}
	q.Set("session_state", newTraceID())
	http.Redirect(w, r, appendQuery(f.redirectURI, q), http.StatusFound)
}

// wrongTenantID is the tenant of the account used by the WrongTenantSignIn
// fault when no second tenant is configured.
const wrongTenantID = "5ca95799-05c0-4826-90bb-98e9dca1245f"

// otherTenantUser picks an account of a tenant other than tenantID: the
// first user of the next configured tenant, or a made-up one.
func (e *Emulator) otherTenantUser(tenantID string) (string, User) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, id := range e.order {
		if id != tenantID && len(e.tenants[id].Users) > 0 {
			return id, e.tenants[id].Users[0]
		}
	}
	return wrongTenantID, User{OID: "40367dc6-1e1e-4b5d-b15c-3db2f07de5df", Username: "admin@northwind.onmicrosoft.com", DisplayName: "Northwind Admin"}
}

// submitted handles what the consent and sign-in forms share when posted:
// the pending flow, the chosen account, HTTP faults, Cancel (access_denied,
// as Entra answers) and an injected AADSTS error. ok=false means the answer
// was written.
func (e *Emulator) submitted(w http.ResponseWriter, r *http.Request, endpoint string, allowOrganizations bool) (*pendingFlow, *tenantState, User, bool) {
	if _, ok := e.pathTenant(w, r, allowOrganizations); !ok {
		return nil, nil, User{}, false
	}
	if err := r.ParseForm(); err != nil {
		e.errorPage(w, r, entraErr(http.StatusBadRequest, "invalid_request", 9002313))
		return nil, nil, User{}, false
	}
	f := e.takePending(r.PostForm.Get("ctx"), endpoint)
	if f == nil {
		e.count(r.PathValue("tenant"), endpoint)
		e.errorPage(w, r, entraErr(http.StatusBadRequest, "invalid_request", 9002313))
		return nil, nil, User{}, false
	}
	t, user, ok := e.pickUser(f.pathTenant, r.PostForm.Get("username"))
	if !ok {
		e.errorPage(w, r, entraErr(http.StatusBadRequest, "invalid_request", 90002, f.pathTenant))
		return nil, nil, User{}, false
	}
	e.count(t.ID, endpoint)
	if e.applyHTTPFaults(w, r, t.ID, endpoint, "", styleHTML) {
		return nil, nil, User{}, false
	}
	if r.PostForm.Get("action") != "accept" {
		ee := entraErr(0, "access_denied", 65004)
		ee.suberror = "cancel"
		e.redirectError(w, r, f.redirectURI, f.state, ee)
		return nil, nil, User{}, false
	}
	if ee := e.takeAADSTSFault(t.ID, endpoint, ""); ee != nil {
		e.redirectError(w, r, f.redirectURI, f.state, ee)
		return nil, nil, User{}, false
	}
	return f, t, user, true
}
