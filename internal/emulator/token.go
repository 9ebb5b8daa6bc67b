package emulator

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// grantFamily is one sign-in's chain of refresh tokens: a Clarion
// connection. Revoking it (RevokeGrants) kills every token of the chain.
type grantFamily struct {
	id          string
	tenantID    string
	user        User
	clientID    string
	scope       scopeRequest // the scopes of the sign-in
	issued      time.Time
	revokedCode int // AADSTS code every refresh now fails with; 0 = alive
}

type refreshToken struct {
	family  *grantFamily
	issued  time.Time
	expires time.Time
}

// tokenRequest is the parsed form of a token request.
type tokenRequest struct {
	grantType  string
	pathTenant string // tenant GUID, organizations or common
	tenantID   string // the tenant of the grant (from the code or refresh token)
	code       *authCode
	rt         *refreshToken
}

func (e *Emulator) handleToken(w http.ResponseWriter, r *http.Request) {
	seg := strings.ToLower(r.PathValue("tenant"))
	pathTenant := seg
	if seg != "organizations" && seg != "common" {
		e.mu.Lock()
		t := e.tenant(seg)
		e.mu.Unlock()
		if t == nil {
			e.count(seg, EndpointToken)
			e.writeEntraError(w, r, entraErr(http.StatusBadRequest, "invalid_tenant", 90002, r.PathValue("tenant")))
			return
		}
		pathTenant = t.ID
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct != "application/x-www-form-urlencoded" {
		e.count(pathTenant, EndpointToken)
		e.writeEntraError(w, r, entraErr(http.StatusBadRequest, "invalid_request", 900144, "grant_type"))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		e.count(pathTenant, EndpointToken)
		e.writeEntraError(w, r, entraErr(http.StatusBadRequest, "invalid_request", 9002313))
		return
	}
	form := r.PostForm
	tr := tokenRequest{grantType: form.Get("grant_type"), pathTenant: pathTenant, tenantID: pathTenant}

	// Find the grant first, without side effects, so that the request is
	// counted and faulted under the tenant it belongs to.
	e.mu.Lock()
	switch tr.grantType {
	case "authorization_code":
		if c := e.codes[form.Get("code")]; c != nil {
			tr.code = c
			tr.tenantID = c.tenantID
			if isGUID(c.pathTenant) {
				tr.tenantID = c.pathTenant
			}
		}
	case "refresh_token":
		if rt := e.refresh[form.Get("refresh_token")]; rt != nil {
			tr.rt = rt
			tr.tenantID = rt.family.tenantID
		}
	}
	e.mu.Unlock()

	e.count(tr.tenantID, EndpointToken)
	if tr.grantType != "" {
		e.countGrant(tr.tenantID, tr.grantType)
	}
	if tr.rt != nil {
		e.countSession(tr.tenantID, tr.rt.family.id)
	}
	if e.applyHTTPFaults(w, r, tr.tenantID, EndpointToken, tr.grantType, styleEntraJSON) {
		return
	}
	if ee := e.takeAADSTSFault(tr.tenantID, EndpointToken, tr.grantType); ee != nil {
		e.writeEntraError(w, r, ee)
		return
	}
	if ee := e.authenticateClient(r, tr); ee != nil {
		e.writeEntraError(w, r, ee)
		return
	}
	var (
		body map[string]any
		ee   *entraError
	)
	switch tr.grantType {
	case "":
		ee = entraErr(http.StatusBadRequest, "invalid_request", 900144, "grant_type")
	case "authorization_code":
		body, ee = e.redeemCode(r, tr)
	case "refresh_token":
		body, ee = e.redeemRefreshToken(r, tr)
	default:
		ee = entraErr(http.StatusBadRequest, "unsupported_grant_type", 70003, tr.grantType)
	}
	if ee != nil {
		e.writeEntraError(w, r, ee)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// authenticateClient checks client_id and client_secret (form or HTTP
// Basic), as Entra does for a confidential client.
func (e *Emulator) authenticateClient(r *http.Request, tr tokenRequest) *entraError {
	clientID, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if u, p, ok := r.BasicAuth(); ok {
		// RFC 6749 §2.3.1: both are form-urlencoded before Basic encoding.
		if d, err := url.QueryUnescape(u); err == nil {
			u = d
		}
		if d, err := url.QueryUnescape(p); err == nil {
			p = d
		}
		if clientID == "" {
			clientID = u
		}
		if secret == "" {
			secret = p
		}
	}
	switch {
	case clientID == "":
		return entraErr(http.StatusBadRequest, "invalid_request", 900144, "client_id")
	case clientID != e.cfg.ClientID:
		return entraErr(http.StatusBadRequest, "invalid_client", 700016, clientID, tr.tenantID)
	case r.PostForm.Get("client_assertion") != "" && secret == "":
		return entraErr(http.StatusUnauthorized, "invalid_client", 700027)
	case secret == "":
		return entraErr(http.StatusUnauthorized, "invalid_client", 7000218)
	case subtle.ConstantTimeCompare([]byte(secret), []byte(e.cfg.ClientSecret)) != 1:
		return entraErr(http.StatusUnauthorized, "invalid_client", 7000215, e.cfg.ClientID)
	}
	return nil
}

func (e *Emulator) redeemCode(r *http.Request, tr tokenRequest) (map[string]any, *entraError) {
	form := r.PostForm
	if form.Get("code") == "" {
		return nil, entraErr(0, "invalid_request", 900144, "code")
	}
	c := tr.code
	if c == nil {
		return nil, entraErr(0, "invalid_grant", 9002313)
	}
	e.mu.Lock()
	used, expired := c.used, e.now().After(c.expires)
	e.mu.Unlock()
	switch {
	case used:
		return nil, entraErr(0, "invalid_grant", 54005)
	case expired:
		return nil, entraErr(0, "invalid_grant", 70008)
	case c.clientID != form.Get("client_id") && form.Get("client_id") != "":
		return nil, entraErr(0, "invalid_grant", 9002313)
	case isGUID(tr.pathTenant) && tr.pathTenant != c.pathTenant && tr.pathTenant != c.tenantID:
		return nil, entraErr(0, "invalid_grant", 700005)
	}
	redirectURI := form.Get("redirect_uri")
	if redirectURI == "" {
		return nil, entraErr(0, "invalid_request", 900144, "redirect_uri")
	}
	if redirectURI != c.redirectURI {
		return nil, entraErr(0, "invalid_grant", 500112, redirectURI, c.redirectURI)
	}
	if c.challenge != "" {
		verifier := form.Get("code_verifier")
		if verifier == "" {
			return nil, entraErr(0, "invalid_request", 900144, "code_verifier")
		}
		want := verifier
		if c.method == "S256" {
			sum := sha256.Sum256([]byte(verifier))
			want = base64.RawURLEncoding.EncodeToString(sum[:])
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(c.challenge)) != 1 {
			return nil, entraErr(0, "invalid_grant", 501481)
		}
	}

	// The resource of the access token: the one named in this request's
	// scope, else the first one of the sign-in.
	req, resource, perms, ee := tokenResource(c.scope, form.Get("scope"), c.tenantID)
	if ee != nil {
		return nil, ee
	}
	if !c.wrongTenant {
		if ee := e.checkResourceAccess(c.tenantID, resource); ee != nil {
			return nil, ee
		}
	}

	e.mu.Lock()
	if c.used { // lost a race with a concurrent redemption
		e.mu.Unlock()
		return nil, entraErr(0, "invalid_grant", 54005)
	}
	c.used = true
	e.mu.Unlock()

	oidc := map[string]bool{}
	for k := range c.scope.oidc {
		oidc[k] = true
	}
	for k := range req.oidc {
		oidc[k] = true
	}
	var fam *grantFamily
	if oidc["offline_access"] {
		fam = &grantFamily{id: newTraceID(), tenantID: c.tenantID, user: c.user, clientID: c.clientID, scope: c.scope, issued: e.now()}
		e.mu.Lock()
		e.families = append(e.families, fam)
		e.mu.Unlock()
	}
	return e.tokenAnswer(r, fam, c.tenantID, c.user, resource, perms, oidc, c.nonce)
}

func (e *Emulator) redeemRefreshToken(r *http.Request, tr tokenRequest) (map[string]any, *entraError) {
	form := r.PostForm
	if form.Get("refresh_token") == "" {
		return nil, entraErr(0, "invalid_request", 900144, "refresh_token")
	}
	rt := tr.rt
	if rt == nil {
		return nil, entraErr(0, "invalid_grant", 9002313)
	}
	fam := rt.family
	e.mu.Lock()
	revoked := fam.revokedCode
	now := e.now()
	e.mu.Unlock()
	if revoked != 0 {
		return nil, e.revokedError(fam, revoked)
	}
	switch {
	case now.After(rt.expires):
		return nil, entraErr(0, "invalid_grant", 700082, fmtStamp(rt.issued))
	case fam.clientID != form.Get("client_id") && form.Get("client_id") != "":
		return nil, entraErr(0, "invalid_grant", 9002313)
	case isGUID(tr.pathTenant) && tr.pathTenant != fam.tenantID:
		return nil, entraErr(0, "invalid_grant", 700005)
	}
	req, resource, perms, ee := tokenResource(fam.scope, form.Get("scope"), fam.tenantID)
	if ee != nil {
		return nil, ee
	}
	if ee := e.checkResourceAccess(fam.tenantID, resource); ee != nil {
		return nil, ee
	}
	oidc := map[string]bool{"offline_access": true}
	for k := range req.oidc {
		oidc[k] = true
	}
	if strings.TrimSpace(form.Get("scope")) == "" && fam.scope.oidc["openid"] {
		oidc["openid"] = true
	}
	return e.tokenAnswer(r, fam, fam.tenantID, fam.user, resource, perms, oidc, "")
}

// revokedError is the answer to a refresh token of a revoked grant.
func (e *Emulator) revokedError(fam *grantFamily, code int) *entraError {
	switch code {
	case 700082, 70043:
		return entraErr(0, "", code, fmtStamp(fam.issued))
	case 50173:
		return entraErr(0, "", code, fmtStamp(fam.issued), fmtStamp(e.now()))
	case 65001:
		return entraErr(0, "", code, e.cfg.ClientID, e.cfg.AppName)
	case 700016:
		return entraErr(0, "", code, e.cfg.ClientID, fam.tenantID)
	}
	return entraErr(0, "", code)
}

// checkResourceAccess checks that the tenant may issue a token for the
// resource: the service principal exists and the app has consent.
func (e *Emulator) checkResourceAccess(tenantID, resource string) *entraError {
	info := lookupResource(resource)
	if info.needsServicePrincipal && e.defenderMissing(tenantID, EndpointToken) {
		return entraErr(0, "invalid_client", 650052, resource, tenantID)
	}
	e.mu.Lock()
	t := e.tenant(tenantID)
	consented := t != nil && t.consented[resource]
	e.mu.Unlock()
	if t == nil {
		return entraErr(0, "invalid_client", 700016, e.cfg.ClientID, tenantID)
	}
	if !consented {
		return entraErr(0, "invalid_grant", 65001, e.cfg.ClientID, e.cfg.AppName)
	}
	return nil
}

// tokenAnswer signs the tokens and builds the JSON answer.
func (e *Emulator) tokenAnswer(r *http.Request, fam *grantFamily, tenantID string, user User, resource string, perms []string, oidc map[string]bool, nonce string) (map[string]any, *entraError) {
	now := e.now()
	base := baseURL(r)
	iss := base + "/" + tenantID + "/v2.0"
	exp := now.Add(e.cfg.AccessTokenTTL)
	at, err := e.keys.sign(e.accessClaims(base, tenantID, user, resource, perms, now))
	if err != nil {
		return nil, entraErr(http.StatusInternalServerError, "server_error", 90033)
	}
	expiresIn := int(e.cfg.AccessTokenTTL / time.Second)
	body := map[string]any{
		"token_type":     "Bearer",
		"scope":          scopeString(resource, perms, oidc),
		"expires_in":     expiresIn,
		"ext_expires_in": expiresIn,
		"access_token":   at,
	}
	if oidc["openid"] {
		claims := map[string]any{
			"aud":                e.cfg.ClientID,
			"iss":                iss,
			"iat":                now.Unix(),
			"nbf":                now.Unix(),
			"exp":                exp.Unix(),
			"name":               user.DisplayName,
			"oid":                user.OID,
			"preferred_username": user.Username,
			"sub":                pairwiseSub(user.OID, e.cfg.ClientID),
			"tid":                tenantID,
			"uti":                newTraceID(),
			"ver":                "2.0",
		}
		if nonce != "" {
			claims["nonce"] = nonce
		}
		if fam != nil {
			claims["sid"] = fam.id
		}
		idt, err := e.keys.sign(claims)
		if err != nil {
			return nil, entraErr(http.StatusInternalServerError, "server_error", 90033)
		}
		body["id_token"] = idt
	}
	if fam != nil && oidc["offline_access"] && !e.takeStateFault(tenantID, EndpointToken, FaultNoRefreshToken) {
		rt := randomToken(192)
		e.mu.Lock()
		for k, old := range e.refresh {
			// Keep expired tokens a while: they answer 700082, not "unknown".
			if now.After(old.expires.Add(30 * 24 * time.Hour)) {
				delete(e.refresh, k)
			}
		}
		e.refresh[rt] = &refreshToken{family: fam, issued: now, expires: now.Add(e.cfg.RefreshTokenTTL)}
		e.mu.Unlock()
		body["refresh_token"] = rt
	}
	e.countResource(tenantID, resource)
	return body, nil
}

// accessClaims are the claims of an access token (v2.0 format).
func (e *Emulator) accessClaims(base, tenantID string, user User, resource string, perms []string, now time.Time) map[string]any {
	return map[string]any{
		"aud":                resource,
		"iss":                base + "/" + tenantID + "/v2.0",
		"iat":                now.Unix(),
		"nbf":                now.Unix(),
		"exp":                now.Add(e.cfg.AccessTokenTTL).Unix(),
		"aio":                newTraceID(),
		"azp":                e.cfg.ClientID,
		"azpacr":             "1",
		"appid":              e.cfg.ClientID,
		"name":               user.DisplayName,
		"oid":                user.OID,
		"preferred_username": user.Username,
		"rh":                 "0.A",
		"scp":                strings.Join(perms, " "),
		"sub":                pairwiseSub(user.OID, resource),
		"tid":                tenantID,
		"uti":                newTraceID(),
		"ver":                "2.0",
	}
}

// pairwiseSub is a subject that differs per user and audience, like
// Entra's pairwise sub claim.
func pairwiseSub(oid, aud string) string {
	sum := sha256.Sum256([]byte(oid + "|" + aud))
	return base64.RawURLEncoding.EncodeToString(sum[:])[:43]
}

// RevokeGrants makes every refresh token issued so far in the tenant fail
// with the given AADSTS code: 700082 (expired by inactivity), 70043 (sign-in
// frequency), 50173 (password changed / revoked), 70008, 70000 (all
// invalid_grant), 65001 (consent revoked: the tenant's consent is removed,
// invalid_grant) or 700016 (app removed from the tenant: consent removed,
// invalid_client). Code 0 means 50173. Grants made after the call work.
func (e *Emulator) RevokeGrants(tenantID string, aadsts int) {
	if aadsts == 0 {
		aadsts = 50173
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	tenantID = strings.ToLower(tenantID)
	for _, f := range e.families {
		if f.tenantID == tenantID {
			f.revokedCode = aadsts
		}
	}
	if t := e.tenant(tenantID); t != nil && (aadsts == 65001 || aadsts == 700016) {
		clear(t.consented)
	}
	e.log.Info("emulator: grants revoked", "tenant_id", tenantID, "aadsts", aadsts)
}

// AccessToken mints an access token exactly as the token endpoint would
// for a user of a tenant and a resource (SentinelPlatformResource or
// DefenderMCPResource), without the OAuth flow: for tests of the Sentinel
// clients. base is the emulator's base URL as the client sees it (the
// token's issuer is base/tid/v2.0). Consent and faults are not checked.
func (e *Emulator) AccessToken(base, tenantID, userOID, resource string) (string, error) {
	e.mu.Lock()
	t := e.tenant(tenantID)
	var user User
	found := false
	if t != nil {
		for _, u := range t.Users {
			if u.OID == userOID || userOID == "" && !found {
				user, found = u, true
			}
		}
	}
	e.mu.Unlock()
	if !found {
		return "", fmt.Errorf("emulator: no user %q in tenant %q", userOID, tenantID)
	}
	perms, _, ok := grantedPerms(resource, []string{".default"})
	if !ok {
		return "", fmt.Errorf("emulator: unknown resource %q", resource)
	}
	now := e.now()
	return e.keys.sign(e.accessClaims(strings.TrimSuffix(base, "/"), t.ID, user, resource, perms, now))
}

// tokenResource picks the resource and permissions of an access token as
// Entra does for both grants: the one resource named in the request's scope
// (else the first of the sign-in), its requested permissions if granted,
// else everything .default grants. It returns the scope request it used.
func tokenResource(signIn scopeRequest, scope, tenantID string) (scopeRequest, string, []string, *entraError) {
	req := signIn
	if strings.TrimSpace(scope) != "" {
		req = parseScopes(scope)
		if len(req.resources) > 1 {
			return req, "", nil, entraErr(0, "invalid_scope", 28000, scope)
		}
	}
	if len(req.unknown) > 0 {
		return req, "", nil, entraErr(0, "invalid_resource", 500011, req.unknown[0], tenantID)
	}
	resource := GraphResource
	if len(req.resources) > 0 {
		resource = req.resources[0]
	}
	perms, bad, ok := grantedPerms(resource, req.perms[resource])
	if !ok {
		return req, "", nil, entraErr(0, "invalid_scope", 70011, resource+"/"+bad)
	}
	if len(perms) == 0 {
		perms, _, _ = grantedPerms(resource, []string{".default"})
	}
	return req, resource, perms, nil
}
