package sentinel

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestErrorClassification(t *testing.T) {
	t.Parallel()
	wrap := func(err error) error { return fmt.Errorf("sentinel: query_lake: %w", err) }
	tests := []struct {
		name         string
		err          error
		throttled    bool
		retryAfter   time.Duration
		transient    bool
		unauthorized bool
		notOnboarded bool
	}{
		{name: "nil"},
		{name: "429 with Retry-After", err: wrap(&UpstreamError{Status: 429, RetryAfter: 30 * time.Second}), throttled: true, retryAfter: 30 * time.Second, transient: true},
		{name: "429 without Retry-After", err: wrap(&UpstreamError{Status: 429}), throttled: true, transient: true},
		{name: "500", err: wrap(&UpstreamError{Status: 500}), transient: true},
		{name: "503", err: wrap(&UpstreamError{Status: 503, RetryAfter: time.Second}), transient: true},
		{name: "408", err: wrap(&UpstreamError{Status: 408}), transient: true},
		{name: "401", err: wrap(&UpstreamError{Status: 401}), unauthorized: true},
		{name: "403", err: wrap(&UpstreamError{Status: 403}), unauthorized: true},
		{name: "400", err: wrap(&UpstreamError{Status: 400})},
		{name: "tool error", err: wrap(errorFromMessage("", "Semantic error"))},
		{name: "tool error not onboarded", err: wrap(errorFromMessage("", "This tenant is not onboarded to Microsoft Sentinel data lake")), notOnboarded: true},
		{name: "invalid response", err: wrap(fmt.Errorf("%w: cut off", ErrInvalidResponse)), transient: true},
		{name: "deadline", err: wrap(context.DeadlineExceeded), transient: true},
		{name: "cancelled", err: wrap(context.Canceled)},
		{name: "connection failed", err: wrap(&transportError{what: "connection to Microsoft failed", err: errors.New("dial tcp: refused")}), transient: true},
		{name: "net error", err: wrap(&net.OpError{Op: "dial", Err: errors.New("refused")}), transient: true},
		{name: "unexpected EOF", err: wrap(io.ErrUnexpectedEOF), transient: true},
		{name: "plain", err: errors.New("something else")},
		{name: "query too long", err: wrap(ErrQueryTooLong)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ra, ok := Throttled(tt.err)
			if ok != tt.throttled || ra != tt.retryAfter {
				t.Errorf("Throttled = %v, %v; want %v, %v", ra, ok, tt.retryAfter, tt.throttled)
			}
			if got := Transient(tt.err); got != tt.transient {
				t.Errorf("Transient = %v, want %v", got, tt.transient)
			}
			if got := Unauthorized(tt.err); got != tt.unauthorized {
				t.Errorf("Unauthorized = %v, want %v", got, tt.unauthorized)
			}
			if got := errors.Is(tt.err, ErrNotOnboarded); got != tt.notOnboarded {
				t.Errorf("errors.Is(ErrNotOnboarded) = %v, want %v", got, tt.notOnboarded)
			}
		})
	}
}

func TestUpstreamErrorText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  *UpstreamError
		want string
	}{
		{&UpstreamError{Status: 429, RetryAfter: 30 * time.Second, Code: "TooManyRequests", Message: "Rate limit"}, "upstream HTTP 429 Too Many Requests (retry after 30s): TooManyRequests: Rate limit"},
		{&UpstreamError{Status: 401}, "upstream HTTP 401 Unauthorized"},
		{&UpstreamError{Code: "tool_error", Message: "Semantic error"}, "upstream tool error: tool_error: Semantic error"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2024, 6, 21, 8, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		header http.Header
		want   time.Duration
	}{
		{"seconds", http.Header{"Retry-After": {"30"}}, 30 * time.Second},
		{"http date", http.Header{"Retry-After": {now.Add(90 * time.Second).Format(http.TimeFormat)}}, 90 * time.Second},
		{"date in the past", http.Header{"Retry-After": {now.Add(-time.Minute).Format(http.TimeFormat)}}, 0},
		{"negative", http.Header{"Retry-After": {"-5"}}, 0},
		{"garbage", http.Header{"Retry-After": {"soon"}}, 0},
		{"absurd capped at a day", http.Header{"Retry-After": {"99999999999"}}, 24 * time.Hour},
		{"azure milliseconds", http.Header{"Retry-After-Ms": {"1500"}}, 1500 * time.Millisecond},
		{"azure x-ms milliseconds", http.Header{"X-Ms-Retry-After-Ms": {"250"}}, 250 * time.Millisecond},
		{"none", http.Header{}, 0},
	}
	for _, tt := range tests {
		if got := retryAfter(tt.header, now); got != tt.want {
			t.Errorf("%s: retryAfter = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestErrorFields(t *testing.T) {
	t.Parallel()
	jwt := "eyJhbGciOiJSUzI1NiJ9.eyJvaWQiOiJ4In0.c2lnbmF0dXJl"
	tests := []struct {
		name     string
		body     string
		header   http.Header
		code     string
		msg      string
		noSecret bool
	}{
		{name: "json-rpc", body: `{"jsonrpc":"2.0","id":1,"error":{"code":-32001,"message":"Session not found"}}`, code: "-32001", msg: "Session not found"},
		{name: "azure", body: `{"error":{"code":"TooManyRequests","message":"Rate limit is exceeded.\nTry again in 30 seconds."}}`, code: "TooManyRequests", msg: "Rate limit is exceeded. Try again in 30 seconds."},
		{name: "oauth", body: `{"error":"invalid_token","error_description":"The token is expired"}`, code: "invalid_token", msg: "The token is expired"},
		{name: "www-authenticate", body: `Unauthorized`, header: http.Header{"Www-Authenticate": {`Bearer realm="", error="invalid_token", error_description="expired"`}}, code: "invalid_token"},
		{name: "html", body: `<html><body>502 Bad Gateway</body></html>`},
		{name: "token echoed", body: `{"error":{"code":"Bad","message":"token ` + jwt + ` rejected; Authorization: Bearer abc.def"}}`, code: "Bad", noSecret: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := tt.header
			if h == nil {
				h = http.Header{}
			}
			code, msg := errorFields([]byte(tt.body), h)
			if code != tt.code {
				t.Errorf("code %q, want %q", code, tt.code)
			}
			if tt.noSecret {
				if strings.Contains(msg, jwt) || strings.Contains(msg, "abc.def") {
					t.Errorf("message leaks a token: %q", msg)
				}
			} else if msg != tt.msg {
				t.Errorf("message %q, want %q", msg, tt.msg)
			}
		})
	}
	if got := safeText(strings.Repeat("é", 500), 200); len(got) > 200+len("…") {
		t.Errorf("safeText did not clip: %d bytes", len(got))
	}
}

func TestToolResultErr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		res          *ToolResult
		wantNil      bool
		code         string
		msg          string
		notOnboarded bool
	}{
		{name: "success", res: &ToolResult{Content: []string{"{}"}}, wantNil: true},
		{name: "nil", res: nil, wantNil: true},
		{name: "plain text", res: &ToolResult{IsError: true, Content: []string{"Semantic error: 'Nope'\nnot found"}}, code: "tool_error", msg: "Semantic error: 'Nope' not found"},
		{name: "json error object", res: &ToolResult{IsError: true, Content: []string{`{"error":{"code":"WorkspaceNotFound","message":"No such workspace"}}`}}, code: "WorkspaceNotFound", msg: "No such workspace"},
		{name: "not onboarded", res: &ToolResult{IsError: true, Content: []string{"The tenant isn't onboarded to the Microsoft Sentinel data lake."}}, code: "tool_error", msg: "The tenant isn't onboarded to the Microsoft Sentinel data lake.", notOnboarded: true},
		{name: "not onboarded code", res: &ToolResult{IsError: true, Content: []string{`{"code":"TenantNotOnboarded","message":"Onboard first"}`}}, code: "TenantNotOnboarded", msg: "Onboard first", notOnboarded: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.res.Err()
			if tt.wantNil {
				if err != nil {
					t.Fatalf("Err() = %v, want nil", err)
				}
				return
			}
			var ue *UpstreamError
			if !errors.As(err, &ue) || ue.Status != 0 || ue.Code != tt.code || ue.Message != tt.msg {
				t.Fatalf("Err() = %#v, want code %q message %q", err, tt.code, tt.msg)
			}
			if errors.Is(err, ErrNotOnboarded) != tt.notOnboarded {
				t.Fatalf("errors.Is(ErrNotOnboarded) = %v", !tt.notOnboarded)
			}
		})
	}
}

func TestPrincipalOf(t *testing.T) {
	t.Parallel()
	jwt := func(claims string) string {
		enc := base64.RawURLEncoding.EncodeToString
		return enc([]byte(`{"alg":"RS256"}`)) + "." + enc([]byte(claims)) + ".sig"
	}
	a1 := principalOf(jwt(`{"oid":"user-a","exp":1}`))
	a2 := principalOf(jwt(`{"oid":"user-a","exp":2}`))
	b := principalOf(jwt(`{"oid":"user-b"}`))
	sub := principalOf(jwt(`{"sub":"subject"}`))
	opaque1, opaque2 := principalOf("opaque-token-1"), principalOf("opaque-token-2")
	if a1 != "oid:user-a" || a1 != a2 {
		t.Errorf("same user, new token: %q vs %q", a1, a2)
	}
	if a1 == b || sub != "sub:subject" || opaque1 == opaque2 || strings.Contains(opaque1, "opaque") {
		t.Errorf("keys not distinct or leak the token: %q %q %q %q %q", a1, b, sub, opaque1, opaque2)
	}
}

func TestParseWorkspaces(t *testing.T) {
	t.Parallel()
	want := []Workspace{{ID: "11111111-1111-1111-1111-111111111111", Name: "ws-one"}, {ID: "22222222-2222-2222-2222-222222222222", Name: "ws-two"}}
	tests := []struct {
		name string
		res  *ToolResult
	}{
		{"array", &ToolResult{Content: []string{`[{"name":"ws-one","id":"11111111-1111-1111-1111-111111111111"},{"name":"ws-two","id":"22222222-2222-2222-2222-222222222222"}]`}}},
		{"wrapped", &ToolResult{Content: []string{`{"workspaces":[{"workspaceName":"ws-one","workspaceId":"11111111-1111-1111-1111-111111111111"},{"workspaceName":"ws-two","workspaceId":"22222222-2222-2222-2222-222222222222","id":"/subscriptions/x"}]}`}}},
		{"structured", &ToolResult{Structured: []byte(`{"value":[{"displayName":"ws-one","customerId":"11111111-1111-1111-1111-111111111111"},{"name":"ws-two","id":"22222222-2222-2222-2222-222222222222"},{"name":"no id"}]}`)}},
		{"table", &ToolResult{Content: []string{`{"tables":[{"name":"PrimaryResult","columns":[{"name":"name","type":"string"},{"name":"id","type":"string"}],"rows":[["ws-one","11111111-1111-1111-1111-111111111111"],["ws-two","22222222-2222-2222-2222-222222222222"]]}]}`}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseWorkspaces(tt.res)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got %+v, want %+v", got, want)
			}
		})
	}
	if _, err := parseWorkspaces(&ToolResult{Content: []string{"not json"}}); err == nil {
		t.Fatal("want an error for a non-JSON answer")
	}
}

// countingTransport fails the test's expectations if any request is made.
type countingTransport struct{ n atomic.Int32 }

func (c *countingTransport) RoundTrip(*http.Request) (*http.Response, error) {
	c.n.Add(1)
	return nil, errors.New("no request expected")
}

func TestCallToolRefusesBeforeAnyRequest(t *testing.T) {
	t.Parallel()
	ct := &countingTransport{}
	c := New(Config{BaseURL: "https://sentinel.microsoft.com/mcp", HTTP: &http.Client{Transport: ct}})
	t.Cleanup(func() { c.Close() })
	tok := Token{Value: "token", TenantID: "tenant"}
	long := "SecurityIncident | where Title has '" + strings.Repeat("x", 800) + "'"
	tests := []struct {
		name    string
		call    func() error
		wantErr error
	}{
		{"query_lake over 800 characters", func() error { _, err := c.QueryLake(context.Background(), tok, "ws", long); return err }, ErrQueryTooLong},
		{"advanced hunting over 800 characters", func() error {
			_, err := c.CallTool(context.Background(), tok, ServerTriage, "RunAdvancedHuntingQuery", map[string]any{"kqlQuery": long})
			return err
		}, ErrQueryTooLong},
		{"unknown server", func() error { _, err := c.CallTool(context.Background(), tok, "../admin", "x", nil); return err }, nil},
		{"no token", func() error { _, err := c.ListWorkspaces(context.Background(), Token{TenantID: "t"}); return err }, nil},
		{"no tenant", func() error { _, err := c.ListWorkspaces(context.Background(), Token{Value: "v"}); return err }, nil},
		{"tenant with a line break", func() error {
			_, err := c.ListWorkspaces(context.Background(), Token{Value: "v", TenantID: "t\r\nX-Evil: 1"})
			return err
		}, nil},
		{"no base URL", func() error {
			_, err := New(Config{BaseURL: "not a url", HTTP: &http.Client{Transport: ct}}).ListWorkspaces(context.Background(), tok)
			return err
		}, nil},
	}
	for _, tt := range tests {
		err := tt.call()
		if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
			t.Errorf("%s: error %v, want %v", tt.name, err, tt.wantErr)
		}
	}
	if n := ct.n.Load(); n != 0 {
		t.Fatalf("%d requests made, want none", n)
	}
}
