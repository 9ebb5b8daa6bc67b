package entra

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestURLs(t *testing.T) {
	t.Parallel()
	c := &Client{Authority: "http://127.0.0.1:9/", ClientID: "app-id", RedirectURI: "http://127.0.0.1:8/connect/callback"}
	tests := []struct {
		name string
		got  string
		path string
		want url.Values
	}{
		{"admin consent", c.AdminConsentURL("st", []string{"a/.default", "b/.default"}), "/organizations/v2.0/adminconsent",
			url.Values{"client_id": {"app-id"}, "scope": {"a/.default b/.default"}, "redirect_uri": {c.RedirectURI}, "state": {"st"}}},
		{"authorize", c.AuthorizeURL("tid-1", "st", "n", "chal", []string{"a/.default", "openid"}), "/tid-1/oauth2/v2.0/authorize",
			url.Values{"client_id": {"app-id"}, "response_type": {"code"}, "response_mode": {"query"}, "redirect_uri": {c.RedirectURI},
				"scope": {"a/.default openid"}, "state": {"st"}, "nonce": {"n"}, "code_challenge": {"chal"},
				"code_challenge_method": {"S256"}, "prompt": {"select_account"}}},
		{"tenant is escaped", c.AuthorizeURL("../x?y", "s", "n", "c", nil), "/..%2Fx%3Fy/oauth2/v2.0/authorize", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u, err := url.Parse(tc.got)
			if err != nil {
				t.Fatal(err)
			}
			if u.Scheme != "http" || u.Host != "127.0.0.1:9" || u.EscapedPath() != tc.path {
				t.Fatalf("url %s: want path %s", tc.got, tc.path)
			}
			if tc.want == nil {
				return
			}
			q := u.Query()
			for k, v := range tc.want {
				if q.Get(k) != v[0] {
					t.Errorf("%s = %q, want %q", k, q.Get(k), v[0])
				}
			}
			if len(q) != len(tc.want) {
				t.Errorf("query has %d parameters, want %d: %v", len(q), len(tc.want), q)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	c := &Client{}
	if c.Issuer("tid") != "https://login.microsoftonline.com/tid/v2.0" {
		t.Fatalf("issuer %s", c.Issuer("tid"))
	}
	if !strings.HasPrefix(c.AdminConsentURL("s", nil), DefaultAuthority+"/organizations/") {
		t.Fatal("admin consent not at the default authority")
	}
	if c.httpClient() == nil || c.httpClient() != c.httpClient() {
		t.Fatal("default HTTP client not kept")
	}
	if time.Since(c.now()) > time.Minute {
		t.Fatal("default clock")
	}
}

func TestTokenResponseHidesTokens(t *testing.T) {
	t.Parallel()
	tr := &TokenResponse{AccessToken: "AT-secret", RefreshToken: "RT-secret", IDToken: "ID-secret", TokenType: "Bearer", Scope: "x/.default"}
	for _, s := range []string{tr.String(), tr.GoString(), tr.LogValue().String()} {
		if strings.Contains(s, "secret") {
			t.Fatalf("%q shows a token", s)
		}
	}
}
