// Package entra owns the OAuth 2.0 / OpenID Connect protocol with the
// Microsoft identity platform (Microsoft Entra ID, v2 endpoints): the admin
// consent and authorize URLs, authorization-code redemption with PKCE,
// refresh-token redemption, id-token verification against the tenant's JWKS,
// and the classification of Entra's error answers (AADSTS codes).
//
// Nothing here knows about Clarion workspaces, connections or storage; that
// is package connection's job.
//
// Secrets never leave this package in an error or a log line: errors carry
// Entra's error code, AADSTS numbers, trace and correlation ids, never a
// token, an authorization code, a client secret or a PKCE verifier.
package entra

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultAuthority is Microsoft Entra's public-cloud authority.
const DefaultAuthority = "https://login.microsoftonline.com"

// Scopes every sign-in asks for besides the resource scope: the id token
// (openid, profile) and a refresh token (offline_access).
const (
	ScopeOpenID        = "openid"
	ScopeProfile       = "profile"
	ScopeOfflineAccess = "offline_access"
)

// maxBody bounds every answer read from Entra.
const maxBody = 1 << 20

// defaultHTTPTimeout applies when Client.HTTP is nil.
const defaultHTTPTimeout = 30 * time.Second

// ErrMalformedResponse: Entra answered 2xx but the body was not the token
// JSON it documents (truncated, not JSON, no access token). Classified as
// Transient: a retry usually gets a whole answer.
var ErrMalformedResponse = errors.New("entra: malformed response")

// Client talks to one Entra authority on behalf of one multi-tenant app
// registration (ClientID/ClientSecret). The zero values of HTTP and Now mean
// a client with a 30 s timeout and time.Now. A Client must not be copied
// after first use (it caches JWKS).
type Client struct {
	// Authority is the Entra base URL, DefaultAuthority when empty. Tests and
	// the demo point it at the emulator.
	Authority    string
	ClientID     string
	ClientSecret string
	// RedirectURI is the one redirect URI registered for the app; it serves
	// both the admin-consent answer and the sign-in answer.
	RedirectURI string
	HTTP        *http.Client
	Now         func() time.Time

	jwksMu sync.Mutex
	jwks   map[string]*keySet // tenant id → cached key set

	defaultHTTPOnce sync.Once
	defaultHTTP     *http.Client
}

func (c *Client) authority() string {
	if c.Authority == "" {
		return DefaultAuthority
	}
	return strings.TrimRight(c.Authority, "/")
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	c.defaultHTTPOnce.Do(func() { c.defaultHTTP = &http.Client{Timeout: defaultHTTPTimeout} })
	return c.defaultHTTP
}

// Issuer is the id-token issuer of tenantID at this authority:
// "{authority}/{tid}/v2.0", exactly as Microsoft's
// "https://login.microsoftonline.com/{tid}/v2.0".
func (c *Client) Issuer(tenantID string) string {
	return c.authority() + "/" + url.PathEscape(tenantID) + "/v2.0"
}

// AdminConsentURL is the tenant-wide admin-consent URL. It uses the
// "organizations" tenant (never "common": personal accounts cannot grant
// admin consent), so the admin's own tenant answers; Entra redirects to
// RedirectURI with admin_consent=True&tenant=<tid>&scope&state, or with
// error, error_description and state.
func (c *Client) AdminConsentURL(state string, scopes []string) string {
	q := url.Values{}
	q.Set("client_id", c.ClientID)
	q.Set("scope", strings.Join(scopes, " "))
	q.Set("redirect_uri", c.RedirectURI)
	q.Set("state", state)
	return c.authority() + "/organizations/v2.0/adminconsent?" + q.Encode()
}

// AuthorizeURL is the authorization-code sign-in URL at tenantID with PKCE
// (S256) and an OIDC nonce. prompt=select_account lets the admin pick the
// account that consented rather than a cached one.
func (c *Client) AuthorizeURL(tenantID, state, nonce, codeChallenge string, scopes []string) string {
	q := url.Values{}
	q.Set("client_id", c.ClientID)
	q.Set("response_type", "code")
	q.Set("redirect_uri", c.RedirectURI)
	q.Set("response_mode", "query")
	q.Set("scope", strings.Join(scopes, " "))
	q.Set("state", state)
	q.Set("nonce", nonce)
	q.Set("code_challenge", codeChallenge)
	q.Set("code_challenge_method", "S256")
	q.Set("prompt", "select_account")
	return c.authority() + "/" + url.PathEscape(tenantID) + "/oauth2/v2.0/authorize?" + q.Encode()
}

// TokenResponse is the token endpoint's success answer. RefreshToken is
// empty unless offline_access was granted; IDToken is empty unless openid
// was asked for. Its String and LogValue methods never show a token.
type TokenResponse struct {
	AccessToken  string
	TokenType    string
	RefreshToken string
	IDToken      string
	// Scope is the space-separated list of scopes the access token carries.
	Scope string
	// ExpiresIn as Entra sent it; ExpiresAt = Now() at receipt + ExpiresIn.
	ExpiresIn time.Duration
	ExpiresAt time.Time
}

// Scopes splits Scope.
func (t *TokenResponse) Scopes() []string { return strings.Fields(t.Scope) }

// String describes the response without any token.
func (t *TokenResponse) String() string {
	return fmt.Sprintf("entra.TokenResponse{type=%s scope=%q expires_at=%s refresh_token=%t id_token=%t}",
		t.TokenType, t.Scope, t.ExpiresAt.Format(time.RFC3339), t.RefreshToken != "", t.IDToken != "")
}

// GoString is String, so that %#v does not print tokens either.
func (t *TokenResponse) GoString() string { return t.String() }

// LogValue keeps tokens out of slog output.
func (t *TokenResponse) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("token_type", t.TokenType),
		slog.String("scope", t.Scope),
		slog.Time("expires_at", t.ExpiresAt),
		slog.Bool("refresh_token", t.RefreshToken != ""),
		slog.Bool("id_token", t.IDToken != ""),
	)
}

// Redeem exchanges an authorization code (with its PKCE verifier) at
// tenantID's token endpoint. Errors are *Error (Entra answered) or transport
// errors; use Classify.
func (c *Client) Redeem(ctx context.Context, tenantID, code, verifier string, scopes []string) (*TokenResponse, error) {
	form := url.Values{}
	form.Set("grant_type", "authorization_code")
	form.Set("code", code)
	form.Set("redirect_uri", c.RedirectURI)
	form.Set("code_verifier", verifier)
	form.Set("scope", strings.Join(scopes, " "))
	tr, err := c.token(ctx, tenantID, form)
	if err != nil {
		return nil, fmt.Errorf("entra: redeem code: %w", err)
	}
	return tr, nil
}

// Refresh redeems a refresh token for an access token to the resource named
// in scopes (one resource per request, e.g. "<app id>/.default"
// "offline_access"). A new refresh token may come back: the caller must then
// store it in place of the old one.
func (c *Client) Refresh(ctx context.Context, tenantID, refreshToken string, scopes []string) (*TokenResponse, error) {
	form := url.Values{}
	form.Set("grant_type", "refresh_token")
	form.Set("refresh_token", refreshToken)
	form.Set("scope", strings.Join(scopes, " "))
	tr, err := c.token(ctx, tenantID, form)
	if err != nil {
		return nil, fmt.Errorf("entra: refresh: %w", err)
	}
	return tr, nil
}

// tokenJSON is the documented success body. expires_in is a number in v2
// and was a string in v1: accept both.
type tokenJSON struct {
	AccessToken  string          `json:"access_token"`
	TokenType    string          `json:"token_type"`
	RefreshToken string          `json:"refresh_token"`
	IDToken      string          `json:"id_token"`
	Scope        string          `json:"scope"`
	ExpiresIn    json.RawMessage `json:"expires_in"`
}

func (c *Client) token(ctx context.Context, tenantID string, form url.Values) (*TokenResponse, error) {
	if tenantID == "" {
		return nil, errors.New("tenant id is empty")
	}
	form.Set("client_id", c.ClientID)
	if c.ClientSecret != "" {
		form.Set("client_secret", c.ClientSecret)
	}
	endpoint := c.authority() + "/" + url.PathEscape(tenantID) + "/oauth2/v2.0/token"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := c.httpClient().Do(req)
	if err != nil {
		// *url.Error names the endpoint only; the form (with the secrets) is
		// in the body and never in the message.
		return nil, err
	}
	defer resp.Body.Close()
	body, readErr := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	received := c.now()

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := parseErrorBody(resp.StatusCode, body)
		e.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), received)
		if readErr != nil || e.Code == "" {
			// A cut or non-JSON error body: nothing to classify on but
			// the status.
			e.Malformed = true
		}
		return nil, e
	}
	if readErr != nil {
		return nil, fmt.Errorf("read token answer: %w: %w", ErrMalformedResponse, readErr)
	}
	var tj tokenJSON
	if err := json.Unmarshal(body, &tj); err != nil {
		return nil, fmt.Errorf("decode token answer: %w", ErrMalformedResponse)
	}
	if tj.AccessToken == "" {
		return nil, fmt.Errorf("token answer has no access_token: %w", ErrMalformedResponse)
	}
	expiresIn, err := parseExpiresIn(tj.ExpiresIn)
	if err != nil {
		return nil, fmt.Errorf("token answer expires_in: %w", ErrMalformedResponse)
	}
	return &TokenResponse{
		AccessToken:  tj.AccessToken,
		TokenType:    tj.TokenType,
		RefreshToken: tj.RefreshToken,
		IDToken:      tj.IDToken,
		Scope:        tj.Scope,
		ExpiresIn:    expiresIn,
		ExpiresAt:    received.Add(expiresIn),
	}, nil
}

func parseExpiresIn(raw json.RawMessage) (time.Duration, error) {
	if len(raw) == 0 || string(raw) == "null" {
		// Not documented as optional, but a missing lifetime is no reason
		// to fail a sign-in: assume Entra's shortest default, one hour.
		return time.Hour, nil
	}
	s := strings.Trim(string(raw), `"`)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, errors.New("not a non-negative integer")
	}
	return time.Duration(n) * time.Second, nil
}

// parseRetryAfter reads Retry-After as delta-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
