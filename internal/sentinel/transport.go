package sentinel

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// callInfo travels in the context of one client call. It carries the bearer
// token and tenant for the requests of that call, and records what the HTTP
// answers were, since the MCP SDK's transport turns them into bare errors
// without the status or the Retry-After header.
type callInfo struct {
	token, tenant string
	finished      atomic.Bool // set when the call returned

	mu           sync.Mutex
	failStatus   int // last non-success status
	retryAfter   time.Duration
	code, msg    string
	okResponses  int
	transportErr error // the request got no answer
	bodyErr      error // a successful answer was cut off
}

type callKey struct{}

func withCall(ctx context.Context, ci *callInfo) context.Context {
	return context.WithValue(ctx, callKey{}, ci)
}

func callFrom(ctx context.Context) *callInfo {
	ci, _ := ctx.Value(callKey{}).(*callInfo)
	return ci
}

type callSnapshot struct {
	failStatus   int
	retryAfter   time.Duration
	code, msg    string
	okResponses  int
	transportErr error
	bodyErr      error
}

func (ci *callInfo) snapshot() callSnapshot {
	ci.mu.Lock()
	defer ci.mu.Unlock()
	return callSnapshot{ci.failStatus, ci.retryAfter, ci.code, ci.msg, ci.okResponses, ci.transportErr, ci.bodyErr}
}

// sessionAuth is the latest credential used on one MCP session. The SDK makes
// a few requests outside any call of ours (closing the session, cancellation
// notices); they use it.
type sessionAuth struct {
	mu            sync.Mutex
	token, tenant string
}

func (a *sessionAuth) set(tok Token) {
	a.mu.Lock()
	a.token, a.tenant = tok.Value, tok.TenantID
	a.mu.Unlock()
}

func (a *sessionAuth) get() (string, string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.token, a.tenant
}

// errForeignHost refuses a request to a host other than the configured MCP
// base: no token leaves for anywhere else.
var errForeignHost = errors.New("sentinel: refusing a request outside the configured MCP base URL")

// authTransport puts the bearer token and the tenant header on each request
// and records each answer into the call's callInfo.
type authTransport struct {
	base   http.RoundTripper
	scheme string
	host   string
	auth   *sessionAuth
	now    func() time.Time
}

func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !strings.EqualFold(req.URL.Scheme, t.scheme) || !strings.EqualFold(req.URL.Host, t.host) {
		closeBody(req)
		return nil, errForeignHost
	}
	ci := callFrom(req.Context())
	if ci != nil && ci.finished.Load() {
		ci = nil // a request of the SDK's own, outliving the call
	}
	var token, tenant string
	if ci != nil {
		token, tenant = ci.token, ci.tenant
	} else {
		token, tenant = t.auth.get()
	}
	if token == "" || tenant == "" {
		closeBody(req)
		return nil, errors.New("sentinel: no token for the request")
	}
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", "Bearer "+token)
	r.Header.Set("x-mcp-client-tenant-id", tenant)

	resp, err := t.base.RoundTrip(r)
	if err != nil {
		if ci != nil {
			ci.mu.Lock()
			ci.transportErr = err
			ci.mu.Unlock()
		}
		return nil, err
	}
	if ci == nil {
		return resp, nil
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		ci.mu.Lock()
		ci.okResponses++
		ci.mu.Unlock()
		resp.Body = &watchedBody{ReadCloser: resp.Body, ci: ci}
		return resp, nil
	}

	// A failure: keep what is needed to classify it, and leave the body
	// readable for the SDK.
	head, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<10))
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(head), resp.Body), resp.Body}
	code, msg := errorFields(head, resp.Header)
	msg = strings.ReplaceAll(msg, token, "[redacted]")
	ci.mu.Lock()
	ci.failStatus = resp.StatusCode
	ci.retryAfter = retryAfter(resp.Header, t.now())
	ci.code, ci.msg = code, msg
	ci.mu.Unlock()
	return resp, nil
}

// closeBody closes the body of a request that is refused before it is sent,
// as a RoundTripper must.
func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// watchedBody records a successful answer that breaks off while being read.
type watchedBody struct {
	io.ReadCloser
	ci *callInfo
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		b.ci.mu.Lock()
		if b.ci.bodyErr == nil {
			b.ci.bodyErr = err
		}
		b.ci.mu.Unlock()
	}
	return n, err
}

// retryAfter reads how long Microsoft asked to wait: Retry-After in seconds
// or as an HTTP date, else Azure's retry-after-ms / x-ms-retry-after-ms.
func retryAfter(h http.Header, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			if n < 0 {
				return 0
			}
			if n > int64(24*time.Hour/time.Second) {
				n = int64(24 * time.Hour / time.Second)
			}
			return time.Duration(n) * time.Second
		}
		if t, err := http.ParseTime(v); err == nil {
			if d := t.Sub(now); d > 0 {
				return d.Round(time.Second)
			}
			return 0
		}
	}
	for _, k := range []string{"retry-after-ms", "x-ms-retry-after-ms"} {
		if v := strings.TrimSpace(h.Get(k)); v != "" {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 {
				return time.Duration(n) * time.Millisecond
			}
		}
	}
	return 0
}

var wwwAuthError = regexp.MustCompile(`(?i)\berror="([^"]*)"`)

// errorFields reads an error code and a short message from a failure body:
// a JSON-RPC error, an Azure error {"error":{"code","message"}}, an OAuth
// error {"error","error_description"}, or the WWW-Authenticate header.
func errorFields(body []byte, h http.Header) (code, msg string) {
	var top struct {
		Error            json.RawMessage `json:"error"`
		ErrorDescription string          `json:"error_description"`
		Message          string          `json:"message"`
		Code             json.RawMessage `json:"code"`
	}
	if json.Unmarshal(bytes.TrimSpace(body), &top) == nil {
		code, msg = jsonText(top.Code), top.Message
		e := bytes.TrimSpace(top.Error)
		switch {
		case len(e) > 0 && e[0] == '{':
			var inner struct {
				Code    json.RawMessage `json:"code"`
				Message string          `json:"message"`
			}
			if json.Unmarshal(e, &inner) == nil {
				code, msg = jsonText(inner.Code), inner.Message
			}
		case len(e) > 0 && e[0] == '"':
			code = jsonText(e)
			msg = top.ErrorDescription
		}
	}
	if code == "" {
		if m := wwwAuthError.FindStringSubmatch(h.Get("WWW-Authenticate")); m != nil {
			code = m[1]
		}
	}
	return safeText(code, 64), safeText(msg, 200)
}

// jsonText renders a JSON string or number as text.
func jsonText(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}
