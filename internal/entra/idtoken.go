package entra

import (
	"context"
	"crypto/rsa"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// ClockSkew is the leeway allowed on exp, nbf and iat.
const ClockSkew = 2 * time.Minute

// JWKS cache policy: keys are kept for a day; an unknown kid triggers a
// refetch (Microsoft rolls signing keys without notice), but at most once a
// minute per tenant so that tokens with made-up kids cannot make us hammer
// the keys endpoint.
const (
	jwksMaxAge     = 24 * time.Hour
	jwksMinRefetch = time.Minute
)

// ErrInvalidIDToken: the id token failed verification (signature, issuer,
// audience, lifetime, nonce). The wrapped message says which check failed,
// never the token.
var ErrInvalidIDToken = errors.New("entra: invalid id token")

// IDClaims are the id-token claims Clarion uses.
type IDClaims struct {
	Issuer            string
	Subject           string
	Audience          []string
	TenantID          string // tid
	ObjectID          string // oid: the user's object id in the tenant
	PreferredUsername string
	Name              string
	Nonce             string
	IssuedAt          time.Time
	NotBefore         time.Time
	ExpiresAt         time.Time
}

type idClaimsJSON struct {
	Issuer            string           `json:"iss"`
	Subject           string           `json:"sub"`
	Audience          jwt.Audience     `json:"aud"`
	TenantID          string           `json:"tid"`
	ObjectID          string           `json:"oid"`
	PreferredUsername string           `json:"preferred_username"`
	Name              string           `json:"name"`
	Nonce             string           `json:"nonce"`
	IssuedAt          *jwt.NumericDate `json:"iat"`
	NotBefore         *jwt.NumericDate `json:"nbf"`
	Expiry            *jwt.NumericDate `json:"exp"`
}

// VerifyIDToken verifies an id token issued by tenantID for this client:
// RS256 signature by a key of the tenant's JWKS
// ({authority}/{tid}/discovery/v2.0/keys), iss = {authority}/{tid}/v2.0,
// aud = ClientID, exp/nbf/iat within ClockSkew, nonce, tid = tenantID.
//
// A token whose (unverified) tid names another tenant is refused with
// ErrTenantMismatch before any key is fetched: the caller learns "wrong
// tenant" and trusts nothing else in it.
func (c *Client) VerifyIDToken(ctx context.Context, tenantID, raw, nonce string) (IDClaims, error) {
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return IDClaims{}, fmt.Errorf("%w: not a compact RS256 JWS", ErrInvalidIDToken)
	}
	if len(tok.Headers) != 1 {
		return IDClaims{}, fmt.Errorf("%w: %d signatures", ErrInvalidIDToken, len(tok.Headers))
	}
	var peek struct {
		TenantID string `json:"tid"`
	}
	if err := tok.UnsafeClaimsWithoutVerification(&peek); err != nil {
		return IDClaims{}, fmt.Errorf("%w: claims are not JSON", ErrInvalidIDToken)
	}
	if peek.TenantID != tenantID {
		return IDClaims{}, fmt.Errorf("%w: expected tenant %s, token names %q", ErrTenantMismatch, tenantID, peek.TenantID)
	}

	key, err := c.signingKey(ctx, tenantID, tok.Headers[0].KeyID)
	if err != nil {
		return IDClaims{}, err
	}
	var cj idClaimsJSON
	if err := tok.Claims(key, &cj); err != nil {
		return IDClaims{}, fmt.Errorf("%w: signature", ErrInvalidIDToken)
	}

	now := c.now()
	switch {
	case cj.Issuer != c.Issuer(tenantID):
		return IDClaims{}, fmt.Errorf("%w: issuer %q is not %q", ErrInvalidIDToken, cj.Issuer, c.Issuer(tenantID))
	case !cj.Audience.Contains(c.ClientID) || (len(cj.Audience) > 1):
		return IDClaims{}, fmt.Errorf("%w: audience is not this app", ErrInvalidIDToken)
	case cj.TenantID != tenantID:
		return IDClaims{}, fmt.Errorf("%w: tid", ErrTenantMismatch)
	case cj.Expiry == nil:
		return IDClaims{}, fmt.Errorf("%w: no exp", ErrInvalidIDToken)
	case now.After(cj.Expiry.Time().Add(ClockSkew)):
		return IDClaims{}, fmt.Errorf("%w: expired", ErrInvalidIDToken)
	case cj.NotBefore != nil && now.Add(ClockSkew).Before(cj.NotBefore.Time()):
		return IDClaims{}, fmt.Errorf("%w: not valid yet", ErrInvalidIDToken)
	case cj.IssuedAt != nil && now.Add(ClockSkew).Before(cj.IssuedAt.Time()):
		return IDClaims{}, fmt.Errorf("%w: issued in the future", ErrInvalidIDToken)
	case nonce == "" || subtle.ConstantTimeCompare([]byte(cj.Nonce), []byte(nonce)) != 1:
		return IDClaims{}, fmt.Errorf("%w: nonce mismatch", ErrInvalidIDToken)
	}
	out := IDClaims{
		Issuer:            cj.Issuer,
		Subject:           cj.Subject,
		Audience:          []string(cj.Audience),
		TenantID:          cj.TenantID,
		ObjectID:          cj.ObjectID,
		PreferredUsername: cj.PreferredUsername,
		Name:              cj.Name,
		Nonce:             cj.Nonce,
		ExpiresAt:         cj.Expiry.Time(),
	}
	if cj.IssuedAt != nil {
		out.IssuedAt = cj.IssuedAt.Time()
	}
	if cj.NotBefore != nil {
		out.NotBefore = cj.NotBefore.Time()
	}
	return out, nil
}

// keySet is the cached JWKS of one tenant; mu serialises its fetches so
// that concurrent verifications cause one request.
type keySet struct {
	mu        sync.Mutex
	keys      jose.JSONWebKeySet
	fetchedAt time.Time
}

func (c *Client) keySetFor(tenantID string) *keySet {
	c.jwksMu.Lock()
	defer c.jwksMu.Unlock()
	if c.jwks == nil {
		c.jwks = make(map[string]*keySet)
	}
	ks := c.jwks[tenantID]
	if ks == nil {
		ks = &keySet{}
		c.jwks[tenantID] = ks
	}
	return ks
}

func (c *Client) signingKey(ctx context.Context, tenantID, kid string) (*rsa.PublicKey, error) {
	ks := c.keySetFor(tenantID)
	ks.mu.Lock()
	defer ks.mu.Unlock()

	now := c.now()
	var fetchErr error
	if ks.fetchedAt.IsZero() || now.Sub(ks.fetchedAt) > jwksMaxAge {
		fetchErr = c.fetchKeys(ctx, tenantID, ks, now)
	}
	if k := findKey(ks.keys, kid); k != nil {
		return k, nil
	}
	if fetchErr == nil && !ks.fetchedAt.Equal(now) && now.Sub(ks.fetchedAt) >= jwksMinRefetch {
		fetchErr = c.fetchKeys(ctx, tenantID, ks, now)
		if k := findKey(ks.keys, kid); k != nil {
			return k, nil
		}
	}
	if fetchErr != nil {
		return nil, fetchErr
	}
	return nil, fmt.Errorf("%w: unknown signing key %q", ErrInvalidIDToken, kid)
}

func findKey(set jose.JSONWebKeySet, kid string) *rsa.PublicKey {
	for _, k := range set.Key(kid) {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if pk, ok := k.Key.(*rsa.PublicKey); ok {
			return pk
		}
	}
	return nil
}

func (c *Client) fetchKeys(ctx context.Context, tenantID string, ks *keySet, now time.Time) error {
	endpoint := c.authority() + "/" + url.PathEscape(tenantID) + "/discovery/v2.0/keys"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return fmt.Errorf("entra: keys: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return fmt.Errorf("entra: keys: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if resp.StatusCode != http.StatusOK {
		e := parseErrorBody(resp.StatusCode, body)
		e.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), now)
		if e.Code == "" {
			e.Malformed = true
		}
		return fmt.Errorf("entra: keys: %w", e)
	}
	if err != nil {
		return fmt.Errorf("entra: keys: %w: %w", ErrMalformedResponse, err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return fmt.Errorf("entra: keys: %w", ErrMalformedResponse)
	}
	ks.keys = set
	ks.fetchedAt = now
	return nil
}
