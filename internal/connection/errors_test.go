package connection

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/clarion/sentinel/internal/entra"
)

func TestConnectErrorFor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		q    url.Values
		code string
		says []string
	}{
		{"P12a/650052 Defender MCP", url.Values{"error": {"invalid_client"}, "error_description": {"AADSTS650052: The app is trying to access a service '7b7b3966-1961-47b5-b080-43ca5482e21c'(Microsoft Defender MCP) that your organization '…' lacks a service principal for."}},
			CodeServiceNotEnabled, []string{"Defender MCP", "az ad sp create --id 7b7b3966-1961-47b5-b080-43ca5482e21c", "Azure Cloud Shell"}},
		{"650052 Sentinel platform", url.Values{"error": {"invalid_client"}, "error_description": {"AADSTS650052: service '4500ebfb-89b6-4b14-a480-7f749797bfcd' lacks a service principal."}},
			CodeServiceNotEnabled, []string{"Sentinel platform", "data lake"}},
		{"P12b/access_denied", url.Values{"error": {"access_denied"}, "error_description": {"AADSTS65004: User declined to consent to access the app."}},
			"consent_declined", []string{"declined"}},
		{"consent_required", url.Values{"error": {"consent_required"}, "error_description": {"AADSTS65001: consent missing."}},
			"consent_required", []string{"admin consent"}},
		{"90072 wrong tenant", url.Values{"error": {"access_denied"}, "error_description": {"AADSTS90072: User account does not exist in tenant."}},
			CodeWrongTenant, []string{"different tenant than the one that granted consent"}},
		{"temporarily_unavailable", url.Values{"error": {"temporarily_unavailable"}},
			CodeMicrosoftUnavailable, []string{"temporarily unavailable"}},
		{"invalid_request", url.Values{"error": {"invalid_request"}, "error_description": {"AADSTS90014: The required field 'x' is missing."}},
			CodeConsentFailed, []string{"invalid_request", "AADSTS90014", "Nothing was connected"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ce := connectErrorFor(entra.ErrorFromQuery(tc.q), CodeConsentFailed, "Microsoft did not complete the admin consent")
			if ce.Code != tc.code {
				t.Fatalf("code %q, want %q (%s)", ce.Code, tc.code, ce.Message)
			}
			for _, w := range tc.says {
				if !strings.Contains(ce.Message, w) {
					t.Errorf("message %q lacks %q", ce.Message, w)
				}
			}
			var e *entra.Error
			if !errors.As(ce, &e) {
				t.Error("cause not kept")
			}
		})
	}
}

func TestLocalPath(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"":                                   "",
		"/integrations/sentinel":             "/integrations/sentinel",
		"/integrations/sentinel?tab=monitor": "/integrations/sentinel?tab=monitor",
		"//evil.example/x":                   "",
		"https://evil.example/":              "",
		"/\\evil.example":                    "",
		"integrations":                       "",
		"/a\r\nLocation: x":                  "",
	}
	for in, want := range tests {
		if got := localPath(in); got != want {
			t.Errorf("localPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestErrorsMatchTheirSentinels(t *testing.T) {
	t.Parallel()
	cause := &entra.Error{HTTPStatus: 429, Code: "", RetryAfter: 30 * time.Second}
	tests := []struct {
		name     string
		err      error
		sentinel error
		code     string
	}{
		{"reconnect", &StateError{Err: ErrReconnectRequired, Code: "refresh_token_expired", Sentence: "s.", cause: cause}, ErrReconnectRequired, "refresh_token_expired"},
		{"service", &StateError{Err: ErrServiceNotEnabled, Code: CodeDefenderMCPNotEnabled, Sentence: "s."}, ErrServiceNotEnabled, CodeDefenderMCPNotEnabled},
		{"transient", &TransientError{RetryAfter: 30 * time.Second, Code: "throttled", Sentence: "s.", cause: cause}, ErrTransient, "throttled"},
		{"not connected", fmt.Errorf("%w: x", ErrNotConnected), ErrNotConnected, "not_connected"},
		{"connect", &ConnectError{Code: CodeNoRefreshToken, Message: msgNoRefresh}, nil, CodeNoRefreshToken},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			wrapped := fmt.Errorf("poll: %w", tc.err)
			if tc.sentinel != nil && !errors.Is(wrapped, tc.sentinel) {
				t.Fatalf("%v is not %v", wrapped, tc.sentinel)
			}
			code, sentence, ok := Explain(wrapped)
			if !ok || code != tc.code || sentence == "" {
				t.Fatalf("Explain = %q %q %v", code, sentence, ok)
			}
		})
	}
	if d, ok := RetryAfter(fmt.Errorf("x: %w", &TransientError{RetryAfter: 30 * time.Second, Code: "throttled"})); !ok || d != 30*time.Second {
		t.Fatalf("RetryAfter = %v %v", d, ok)
	}
	if _, _, ok := Explain(errors.New("other")); ok {
		t.Fatal("Explain claims a foreign error")
	}
}

func TestTokenHidesValue(t *testing.T) {
	t.Parallel()
	tok := Token{Value: "eyJsecret", TenantID: "tid", ExpiresAt: time.Unix(0, 0)}
	for _, s := range []string{tok.String(), fmt.Sprintf("%v %+v %#v", tok, tok, tok), tok.LogValue().String()} {
		if strings.Contains(s, "secret") {
			t.Fatalf("%q shows the token", s)
		}
	}
}
