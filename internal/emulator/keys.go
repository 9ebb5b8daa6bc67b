package emulator

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// signingKeys holds the RS256 key that signs every token, and its JWKS
// entry with a self-signed certificate (x5c, x5t) as Entra publishes them.
type signingKeys struct {
	priv   *rsa.PrivateKey
	kid    string
	signer jose.Signer
	jwks   jose.JSONWebKeySet
}

func newSigningKeys(priv *rsa.PrivateKey) (*signingKeys, error) {
	if priv == nil {
		var err error
		if priv, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			return nil, err
		}
	}
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(der)
	kid := base64.RawURLEncoding.EncodeToString(sum[:16])

	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "accounts.emulator.local"},
		NotBefore:    time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(certDER)
	if err != nil {
		return nil, err
	}
	thumb := sha1.Sum(certDER)

	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: priv, KeyID: kid, Algorithm: string(jose.RS256)}},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("x5t", base64.RawURLEncoding.EncodeToString(thumb[:])),
	)
	if err != nil {
		return nil, err
	}
	return &signingKeys{
		priv:   priv,
		kid:    kid,
		signer: signer,
		jwks: jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
			Key:                       &priv.PublicKey,
			KeyID:                     kid,
			Algorithm:                 string(jose.RS256),
			Use:                       "sig",
			Certificates:              []*x509.Certificate{cert},
			CertificateThumbprintSHA1: thumb[:],
		}}},
	}, nil
}

func (k *signingKeys) sign(claims map[string]any) (string, error) {
	return jwt.Signed(k.signer).Claims(claims).Serialize()
}

// tokenClaims are the claims the emulator reads back from its own access
// tokens.
type tokenClaims struct {
	Aud       string `json:"aud"`
	Iss       string `json:"iss"`
	Tid       string `json:"tid"`
	Oid       string `json:"oid"`
	Scp       string `json:"scp"`
	Azp       string `json:"azp"`
	Name      string `json:"name"`
	Username  string `json:"preferred_username"`
	IssuedAt  int64  `json:"iat"`
	NotBefore int64  `json:"nbf"`
	Expiry    int64  `json:"exp"`
}

var (
	errTokenMalformed = errors.New("the access token is malformed")
	errTokenSignature = errors.New("the access token signature is invalid")
)

// verify checks the signature of a token signed by this emulator and
// returns its claims. Audience and lifetime are the caller's to check.
func (k *signingKeys) verify(raw string) (*tokenClaims, error) {
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return nil, errTokenMalformed
	}
	if len(tok.Headers) != 1 || tok.Headers[0].KeyID != k.kid {
		return nil, errTokenSignature
	}
	var c tokenClaims
	if err := tok.Claims(&k.priv.PublicKey, &c); err != nil {
		return nil, errTokenSignature
	}
	return &c, nil
}

func (e *Emulator) handleKeys(w http.ResponseWriter, r *http.Request) {
	tenantID, ok := e.resolveMetadataTenant(w, r)
	if !ok {
		return
	}
	if e.applyHTTPFaults(w, r, tenantID, EndpointKeys, "", styleEntraJSON) {
		return
	}
	w.Header().Set("Cache-Control", "max-age=86400, private")
	writeJSON(w, http.StatusOK, e.keys.jwks)
}

func (e *Emulator) handleOpenIDConfig(w http.ResponseWriter, r *http.Request) {
	tenantID, ok := e.resolveMetadataTenant(w, r)
	if !ok {
		return
	}
	if e.applyHTTPFaults(w, r, tenantID, EndpointOpenIDConfiguration, "", styleEntraJSON) {
		return
	}
	base := baseURL(r)
	seg := r.PathValue("tenant")
	issuerTenant := seg
	if !isGUID(seg) {
		issuerTenant = "{tenantid}" // as Entra publishes it for organizations/common
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"token_endpoint":                        fmt.Sprintf("%s/%s/oauth2/v2.0/token", base, seg),
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"jwks_uri":                              fmt.Sprintf("%s/%s/discovery/v2.0/keys", base, seg),
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"issuer":                                fmt.Sprintf("%s/%s/v2.0", base, issuerTenant),
		"request_uri_parameter_supported":       false,
		"userinfo_endpoint":                     "https://graph.microsoft.com/oidc/userinfo",
		"authorization_endpoint":                fmt.Sprintf("%s/%s/oauth2/v2.0/authorize", base, seg),
		"device_authorization_endpoint":         fmt.Sprintf("%s/%s/oauth2/v2.0/devicecode", base, seg),
		"http_logout_supported":                 true,
		"frontchannel_logout_supported":         true,
		"end_session_endpoint":                  fmt.Sprintf("%s/%s/oauth2/v2.0/logout", base, seg),
		"claims_supported": []string{"sub", "iss", "cloud_instance_name", "aud", "exp", "iat", "auth_time",
			"acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email", "oid"},
		"code_challenge_methods_supported": []string{"plain", "S256"},
		"tenant_region_scope":              "EU",
		"cloud_instance_name":              "microsoftonline.com",
		"kerberos_endpoint":                fmt.Sprintf("%s/%s/kerberos", base, seg),
	})
}

// resolveMetadataTenant accepts a tenant GUID, organizations or common for
// the key and metadata documents.
func (e *Emulator) resolveMetadataTenant(w http.ResponseWriter, r *http.Request) (string, bool) {
	seg := r.PathValue("tenant")
	switch seg {
	case "organizations", "common":
		e.count(seg, endpointFor(r))
		return seg, true
	}
	e.mu.Lock()
	t := e.tenant(seg)
	e.mu.Unlock()
	if t == nil {
		e.count(seg, endpointFor(r))
		e.writeEntraError(w, r, entraErr(http.StatusBadRequest, "invalid_tenant", 90002, seg))
		return "", false
	}
	e.count(t.ID, endpointFor(r))
	return t.ID, true
}

func endpointFor(r *http.Request) string {
	switch p := r.URL.Path; {
	case hasSuffix(p, "/discovery/v2.0/keys"):
		return EndpointKeys
	case hasSuffix(p, "/.well-known/openid-configuration"):
		return EndpointOpenIDConfiguration
	}
	return r.URL.Path
}

func hasSuffix(s, suffix string) bool {
	return len(s) >= len(suffix) && s[len(s)-len(suffix):] == suffix
}

// fmtStamp writes a time as Entra does in error texts.
func fmtStamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") }
