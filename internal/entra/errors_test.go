package entra

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

func body(status int, js string) *Error { return parseErrorBody(status, []byte(js)) }

func TestClassifyAndExplain(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		err   error
		class Class
		code  string
		// words the sentence must contain
		says []string
	}{
		{"P11/700082", body(400, `{"error":"invalid_grant","error_description":"AADSTS700082: The refresh token has expired due to inactivity.","error_codes":[700082]}`),
			GrantDead, "refresh_token_expired", []string{"expired", "AADSTS700082", "Reconnect"}},
		{"P11/50173", body(400, `{"error":"invalid_grant","error_codes":[50173]}`),
			GrantDead, "password_changed", []string{"password"}},
		{"P11/70043", body(400, `{"error":"invalid_grant","error_codes":[70043]}`),
			GrantDead, "signin_frequency", []string{"Conditional Access"}},
		{"70008", body(400, `{"error":"invalid_grant","error_codes":[70008]}`), GrantDead, "grant_expired", nil},
		{"70000", body(400, `{"error":"invalid_grant","error_codes":[70000]}`), GrantDead, "grant_invalid", nil},
		{"invalid_grant without codes", body(400, `{"error":"invalid_grant"}`), GrantDead, "grant_invalid", nil},
		{"65001 consent revoked", body(400, `{"error":"invalid_grant","error_description":"AADSTS65001: The user or administrator has not consented"}`),
			GrantDead, "consent_revoked", []string{"consent", "revoked"}},
		{"P20b/700016", body(401, `{"error":"invalid_client","error_description":"AADSTS700016: Application with identifier 'x' was not found in the directory 'y'.","error_codes":[700016]}`),
			GrantDead, "app_removed", []string{"Access revoked"}},
		{"invalid_client without codes", body(401, `{"error":"invalid_client"}`), GrantDead, "app_removed", nil},
		{"invalid_client bad secret is ours", body(401, `{"error":"invalid_client","error_codes":[7000215]}`),
			Other, "client_credentials_invalid", []string{"client secret"}},
		{"interaction_required", body(400, `{"error":"interaction_required","error_codes":[50076]}`), GrantDead, "interaction_required", nil},
		{"P12a/650052 at consent", ErrorFromQuery(url.Values{"error": {"invalid_client"}, "error_description": {"AADSTS650052: The app is trying to access a service '7b7b3966-1961-47b5-b080-43ca5482e21c'(Microsoft Defender MCP) that your organization lacks a service principal for."}}),
			ServiceNotEnabled, "service_not_enabled", []string{"AADSTS650052", "service principal"}},
		{"500011 at refresh", body(400, `{"error":"invalid_resource","error_codes":[500011]}`), ServiceNotEnabled, "service_not_enabled", nil},
		{"P12b/access_denied", ErrorFromQuery(url.Values{"error": {"access_denied"}, "error_description": {"AADSTS65004: User declined to consent to access the app."}}),
			ConsentDeclined, "consent_declined", []string{"declined"}},
		{"consent_required", ErrorFromQuery(url.Values{"error": {"consent_required"}, "error_description": {"AADSTS65001: consent missing"}}),
			ConsentDeclined, "consent_required", []string{"admin consent"}},
		{"90094", ErrorFromQuery(url.Values{"error": {"access_denied"}, "error_description": {"AADSTS90094: The grant requires admin permission."}}),
			ConsentDeclined, "consent_required", nil},
		{"65004 alone", body(400, `{"error":"invalid_request","error_codes":[65004]}`), ConsentDeclined, "consent_declined", nil},
		{"90072", ErrorFromQuery(url.Values{"error": {"access_denied"}, "error_description": {"AADSTS90072: User account from identity provider does not exist in tenant."}}),
			WrongTenant, "wrong_tenant", []string{"different tenant"}},
		{"50020", body(400, `{"error":"invalid_request","error_codes":[50020]}`), WrongTenant, "wrong_tenant", nil},
		{"700005", body(400, `{"error":"invalid_grant","error_codes":[700005]}`), WrongTenant, "wrong_tenant", nil},
		{"id token of another tenant", fmt.Errorf("x: %w", ErrTenantMismatch), WrongTenant, "wrong_tenant", nil},
		{"503", body(503, `{"error":"temporarily_unavailable","error_codes":[50196]}`), Transient, "entra_unavailable", []string{"HTTP 503"}},
		{"500 html", body(500, `<html>oops</html>`), Transient, "entra_unavailable", nil},
		{"429 keeps Retry-After", &Error{HTTPStatus: 429, RetryAfter: 30 * time.Second}, Transient, "throttled", []string{"30s"}},
		{"temporarily_unavailable on 400", body(400, `{"error":"temporarily_unavailable"}`), Transient, "entra_unavailable", nil},
		{"truncated 400 body", &Error{HTTPStatus: 400, Malformed: true}, Transient, "malformed_response", nil},
		{"truncated 200 body", fmt.Errorf("entra: refresh: %w", ErrMalformedResponse), Transient, "malformed_response", nil},
		{"unexpected EOF", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), Transient, "malformed_response", nil},
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), Transient, "timeout", nil},
		{"net timeout", &url.Error{Op: "Post", URL: "http://127.0.0.1/t", Err: timeoutErr{}}, Transient, "timeout", nil},
		{"connection refused", &url.Error{Op: "Post", URL: "http://127.0.0.1/t", Err: &net.OpError{Op: "dial", Err: errors.New("connection refused")}},
			Transient, "network_error", nil},
		{"invalid_scope", body(400, `{"error":"invalid_scope","error_codes":[70011]}`), Other, "entra_error", []string{"invalid_scope", "AADSTS70011"}},
		{"canceled", context.Canceled, Other, "canceled", nil},
		{"plain", errors.New("boom"), Other, "entra_error", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := Classify(tc.err); got != tc.class {
				t.Fatalf("Classify = %v, want %v", got, tc.class)
			}
			// Wrapping must not change the answer.
			if got := Classify(fmt.Errorf("outer: %w", tc.err)); got != tc.class {
				t.Fatalf("Classify(wrapped) = %v, want %v", got, tc.class)
			}
			x := Explain(tc.err)
			if x.Class != tc.class || x.Code != tc.code {
				t.Fatalf("Explain = %+v, want class %v code %q", x, tc.class, tc.code)
			}
			if x.Sentence == "" || !strings.HasSuffix(x.Sentence, ".") {
				t.Errorf("sentence %q is not a sentence", x.Sentence)
			}
			for _, w := range tc.says {
				if !strings.Contains(x.Sentence, w) {
					t.Errorf("sentence %q does not say %q", x.Sentence, w)
				}
			}
		})
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestClassifyNil(t *testing.T) {
	t.Parallel()
	if Classify(nil) != Other {
		t.Fatal("nil is not Other")
	}
}

func TestParseErrorBody(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		status    int
		body      string
		code      string
		codes     []int
		trace     string
		corr      string
		malformed bool
	}{
		{"documented shape", 400, `{"error":"invalid_grant","error_description":"AADSTS700082: expired.\r\nTrace ID: 0000aaaa-11bb-cccc-dd22-eeeeee333333\r\nCorrelation ID: aaaa0000-bb11-2222-33cc-444444dddddd\r\nTimestamp: 2024-01-09 02:02:12Z","error_codes":[700082],"timestamp":"2024-01-09 02:02:12Z","trace_id":"t-1-2-3-4-5","correlation_id":"c-1-2-3-4-5","error_uri":"https://login.microsoftonline.com/error?code=700082"}`,
			"invalid_grant", []int{700082}, "t-1-2-3-4-5", "c-1-2-3-4-5", false},
		{"codes only in the description", 400, `{"error":"invalid_grant","error_description":"AADSTS50173: The provided grant has expired.\r\nTrace ID: 0000aaaa-11bb-cccc-dd22-eeeeee333333\r\nCorrelation ID: aaaa0000-bb11-2222-33cc-444444dddddd"}`,
			"invalid_grant", []int{50173}, "0000aaaa-11bb-cccc-dd22-eeeeee333333", "aaaa0000-bb11-2222-33cc-444444dddddd", false},
		{"cut body", 400, `{"error":"invalid_gr`, "", nil, "", "", true},
		{"html", 502, `<html>bad gateway</html>`, "", nil, "", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := parseErrorBody(tc.status, []byte(tc.body))
			if e.Code == "" {
				e.Malformed = true // as token() does
			}
			if e.HTTPStatus != tc.status || e.Code != tc.code || !slices.Equal(e.ErrorCodes, tc.codes) ||
				e.TraceID != tc.trace || e.CorrelationID != tc.corr || e.Malformed != tc.malformed {
				t.Fatalf("got %+v", e)
			}
		})
	}
}

func TestErrorMessageNamesCodesOnly(t *testing.T) {
	t.Parallel()
	e := body(400, `{"error":"invalid_grant","error_description":"AADSTS700082: The refresh token has expired due to inactivity.\r\nTrace ID: abcdef01-0000-0000-0000-000000000000\r\nCorrelation ID: abcdef02-0000-0000-0000-000000000000","error_codes":[700082]}`)
	msg := e.Error()
	for _, want := range []string{"invalid_grant", "AADSTS700082", "http 400", "The refresh token has expired due to inactivity.", "trace_id=abcdef01"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "\n") || strings.Contains(msg, "Correlation ID:") {
		t.Errorf("%q carries the description's trailer lines", msg)
	}
}

func TestErrorFromQueryWithoutError(t *testing.T) {
	t.Parallel()
	if e := ErrorFromQuery(url.Values{"code": {"x"}, "state": {"y"}}); e != nil {
		t.Fatalf("got %v", e)
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		header string
		want   time.Duration
	}{
		{"30", 30 * time.Second},
		{" 7 ", 7 * time.Second},
		{"", 0},
		{"-3", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tc := range tests {
		if got := parseRetryAfter(tc.header, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tc.header, got, tc.want)
		}
	}
	d, ok := RetryAfter(fmt.Errorf("x: %w", &Error{HTTPStatus: 429, RetryAfter: 30 * time.Second}))
	if !ok || d != 30*time.Second {
		t.Fatalf("RetryAfter = %v %v", d, ok)
	}
	if _, ok := RetryAfter(errors.New("x")); ok {
		t.Fatal("RetryAfter of a plain error")
	}
}

func TestExpiresIn(t *testing.T) {
	t.Parallel()
	tests := []struct {
		raw  string
		want time.Duration
		ok   bool
	}{
		{`3599`, 3599 * time.Second, true},
		{`"3599"`, 3599 * time.Second, true},
		{``, time.Hour, true},
		{`null`, time.Hour, true},
		{`-1`, 0, false},
		{`"soon"`, 0, false},
	}
	for _, tc := range tests {
		got, err := parseExpiresIn([]byte(tc.raw))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseExpiresIn(%s) = %v, %v", tc.raw, got, err)
		}
	}
}
