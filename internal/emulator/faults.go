package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Endpoint names: the targets of faults and the keys of Stats.Endpoints.
// MCP tool names (e.g. "query_lake") are targets too.
const (
	EndpointConsent             = "consent"
	EndpointAuthorize           = "authorize"
	EndpointToken               = "token"
	EndpointKeys                = "keys"
	EndpointOpenIDConfiguration = "openid-configuration"
	EndpointDataExploration     = "mcp/data-exploration"
	EndpointTriage              = "mcp/triage"
)

// FaultKind says what a fault does.
type FaultKind string

// Fault kinds.
const (
	// FaultThrottle answers HTTP 429 with a Retry-After header
	// (Fault.RetryAfter, default 1 s).
	FaultThrottle FaultKind = "throttle"
	// FaultServerError answers an HTTP 5xx (Fault.Status, default 503).
	FaultServerError FaultKind = "server_error"
	// FaultDelay holds the answer for Fault.Delay, or until the client
	// gives up (the request's context ends). The request then goes on.
	FaultDelay FaultKind = "delay"
	// FaultTruncate cuts the answer's body in half: invalid JSON.
	FaultTruncate FaultKind = "truncate"
	// FaultAADSTS makes consent, sign-in or the token endpoint fail with
	// Fault.AADSTS (and Fault.Error, default the usual error for the code;
	// Fault.Description, default Entra's text). Default target: token.
	FaultAADSTS FaultKind = "aadsts"
	// FaultWrongTenantSignIn makes the next sign-in return tokens (id token
	// included) of an account of another tenant.
	FaultWrongTenantSignIn FaultKind = "wrong_tenant_sign_in"
	// FaultNoRefreshToken makes token answers come without refresh_token.
	FaultNoRefreshToken FaultKind = "no_refresh_token"
	// FaultNotOnboarded makes the tenant look not onboarded to the data
	// lake: list_sentinel_workspaces and query_lake fail.
	FaultNotOnboarded FaultKind = "not_onboarded"
	// FaultDefenderNotProvisioned makes the tenant look as if it had no
	// Defender MCP service principal: consent to it and tokens for it fail
	// with AADSTS650052.
	FaultDefenderNotProvisioned FaultKind = "defender_not_provisioned"
	// FaultRepeatAnswer makes query_lake answer with its previous answer
	// to the tenant, whatever the query: a continuation that does not move
	// (the same page twice).
	FaultRepeatAnswer FaultKind = "repeat_answer"
	// FaultRedirect answers an MCP POST with 307 Temporary Redirect to
	// Fault.Location (e.g. another host): a continuation pointing elsewhere.
	FaultRedirect FaultKind = "redirect"
)

var faultKinds = []FaultKind{FaultThrottle, FaultServerError, FaultDelay, FaultTruncate, FaultAADSTS,
	FaultWrongTenantSignIn, FaultNoRefreshToken, FaultNotOnboarded, FaultDefenderNotProvisioned,
	FaultRepeatAnswer, FaultRedirect}

// Fault is an injected failure. It applies to the requests of TenantID
// ("" = every tenant) to Target (an Endpoint* name or an MCP tool name;
// "" = every target the kind applies to), Count times (0 = until cleared).
//
// For MCP tools, throttle, server_error, delay and truncate act on the HTTP
// POST that carries the tools/call, as a gateway in front of the MCP server
// would. A request counts against one fault of each kind at most.
type Fault struct {
	ID       string    `json:"id,omitempty"` // assigned by SetFault when empty
	TenantID string    `json:"tenantId,omitempty"`
	Target   string    `json:"target,omitempty"`
	Kind     FaultKind `json:"kind"`
	Count    int       `json:"count,omitempty"`
	// GrantType narrows a token-endpoint fault to one grant type
	// ("authorization_code" or "refresh_token").
	GrantType string `json:"grantType,omitempty"`
	// Status is the HTTP status of a server_error fault (500–599).
	Status int `json:"status,omitempty"`
	// RetryAfter is the Retry-After of a throttle fault (whole seconds).
	RetryAfter time.Duration `json:"-"`
	// Delay is the hold time of a delay fault.
	Delay time.Duration `json:"-"`
	// AADSTS, Error and Description shape an aadsts fault.
	AADSTS      int    `json:"aadsts,omitempty"`
	Error       string `json:"error,omitempty"`
	Description string `json:"description,omitempty"`
	// Location is where a redirect fault sends the client.
	Location string `json:"location,omitempty"`

	remaining int // for Count > 0
}

type faultJSON struct {
	*faultAlias
	RetryAfter float64 `json:"retryAfter,omitempty"` // seconds
	Delay      string  `json:"delay,omitempty"`      // Go duration, e.g. "2s"
	Remaining  int     `json:"remaining,omitempty"`
}

type faultAlias Fault

// MarshalJSON writes RetryAfter in seconds and Delay as a duration text.
func (f Fault) MarshalJSON() ([]byte, error) {
	j := faultJSON{faultAlias: (*faultAlias)(&f), RetryAfter: f.RetryAfter.Seconds(), Remaining: f.remaining}
	if f.Delay > 0 {
		j.Delay = f.Delay.String()
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads "retryAfter" in seconds and "delay" as a duration
// text ("1.5s") or a number of seconds.
func (f *Fault) UnmarshalJSON(b []byte) error {
	var raw struct {
		faultAlias
		RetryAfter float64         `json:"retryAfter"`
		Delay      json.RawMessage `json:"delay"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*f = Fault(raw.faultAlias)
	f.RetryAfter = time.Duration(raw.RetryAfter * float64(time.Second))
	if len(raw.Delay) > 0 && string(raw.Delay) != "null" {
		var s string
		if err := json.Unmarshal(raw.Delay, &s); err == nil {
			d, err := time.ParseDuration(s)
			if err != nil {
				return fmt.Errorf("delay: %w", err)
			}
			f.Delay = d
		} else {
			var secs float64
			if err := json.Unmarshal(raw.Delay, &secs); err != nil {
				return fmt.Errorf("delay: want a duration text or seconds")
			}
			f.Delay = time.Duration(secs * float64(time.Second))
		}
	}
	return nil
}

func (f *Fault) validate() error {
	if !slices.Contains(faultKinds, f.Kind) {
		return fmt.Errorf("emulator: unknown fault kind %q", f.Kind)
	}
	if f.Count < 0 {
		return fmt.Errorf("emulator: fault count %d is negative", f.Count)
	}
	switch f.Kind {
	case FaultServerError:
		if f.Status == 0 {
			f.Status = http.StatusServiceUnavailable
		}
		if f.Status < 500 || f.Status > 599 {
			return fmt.Errorf("emulator: server_error status %d is not 5xx", f.Status)
		}
	case FaultThrottle:
		if f.RetryAfter <= 0 {
			f.RetryAfter = time.Second
		}
	case FaultDelay:
		if f.Delay <= 0 {
			return fmt.Errorf("emulator: delay fault needs a positive delay")
		}
	case FaultAADSTS:
		if f.AADSTS <= 0 {
			return fmt.Errorf("emulator: aadsts fault needs an AADSTS code")
		}
		if f.Target == "" {
			f.Target = EndpointToken
		}
		if f.Target != EndpointToken && f.Target != EndpointConsent && f.Target != EndpointAuthorize {
			return fmt.Errorf("emulator: aadsts faults apply to token, consent or authorize, not %q", f.Target)
		}
	}
	f.TenantID = strings.ToLower(f.TenantID)
	return nil
}

// SetFault injects a fault. It panics if the fault is invalid (unknown
// kind, a server_error status outside 5xx, a delay without duration, an
// aadsts fault without code); the control API reports these as 400.
func (e *Emulator) SetFault(f Fault) {
	if _, err := e.addFault(f); err != nil {
		panic(err)
	}
}

func (e *Emulator) addFault(f Fault) (Fault, error) {
	if err := f.validate(); err != nil {
		return Fault{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faultSeq++
	if f.ID == "" {
		f.ID = "f" + strconv.Itoa(e.faultSeq)
	}
	f.remaining = f.Count
	e.faults = append(e.faults, &f)
	e.log.Info("emulator: fault set", "fault_id", f.ID, "kind", f.Kind, "tenant_id", f.TenantID, "target", f.Target, "count", f.Count)
	return f, nil
}

// Faults lists the active faults.
func (e *Emulator) Faults() []Fault {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Fault, len(e.faults))
	for i, f := range e.faults {
		out[i] = *f
	}
	return out
}

// ClearFaults removes every fault.
func (e *Emulator) ClearFaults() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults = nil
}

// ClearFault removes one fault by id; it reports whether it existed.
func (e *Emulator) ClearFault(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := len(e.faults)
	e.faults = slices.DeleteFunc(e.faults, func(f *Fault) bool { return f.ID == id })
	return len(e.faults) != n
}

// matches reports whether f applies to a request.
func (f *Fault) matches(tenantID, target, grantType string) bool {
	if f.TenantID != "" && f.TenantID != strings.ToLower(tenantID) {
		return false
	}
	if f.Target != "" && f.Target != target {
		return false
	}
	if f.GrantType != "" && f.GrantType != grantType {
		return false
	}
	return true
}

// take consumes the first fault of the given kind matching a request (any
// of targets) and returns a copy, or nil.
func (e *Emulator) take(kind FaultKind, tenantID, grantType string, targets ...string) *Fault {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, f := range e.faults {
		if f.Kind != kind {
			continue
		}
		for _, t := range targets {
			if !f.matches(tenantID, t, grantType) {
				continue
			}
			cp := *f
			if f.Count > 0 {
				f.remaining--
				if f.remaining <= 0 {
					e.faults = slices.Delete(e.faults, i, i+1)
				}
			}
			e.log.Info("emulator: fault applied", "fault_id", f.ID, "kind", f.Kind, "tenant_id", tenantID, "target", t)
			return &cp
		}
	}
	return nil
}

// takeStateFault consumes a fault of the kind for the tenant and target.
func (e *Emulator) takeStateFault(tenantID, target string, kind FaultKind) bool {
	return e.take(kind, tenantID, "", target) != nil
}

// takeAADSTSFault consumes an aadsts fault and returns its error.
func (e *Emulator) takeAADSTSFault(tenantID, target, grantType string) *entraError {
	f := e.take(FaultAADSTS, tenantID, grantType, target)
	if f == nil {
		return nil
	}
	ee := entraErr(0, f.Error, f.AADSTS)
	if f.Description != "" {
		ee.msg = f.Description
	}
	return ee
}

type faultStyle int

const (
	styleEntraJSON faultStyle = iota // Entra's JSON error body
	styleHTML                        // an HTML error page (consent, sign-in)
	styleGateway                     // an API gateway's JSON error (MCP)
)

// applyHTTPFaults applies the HTTP-level faults (delay, throttle,
// server_error, truncate) for a request. It returns true when it has
// written the answer. A truncate fault wraps w so that the body the
// handler writes is cut short; callers must write through the returned
// writer, so truncation is applied by wrapping before the handler runs.
func (e *Emulator) applyHTTPFaults(w http.ResponseWriter, r *http.Request, tenantID, endpoint, grantType string, style faultStyle, extraTargets ...string) bool {
	targets := append([]string{endpoint}, extraTargets...)
	if f := e.take(FaultDelay, tenantID, grantType, targets...); f != nil {
		if !sleepCtx(r.Context(), f.Delay) {
			return true // the client gave up
		}
	}
	if f := e.take(FaultRedirect, tenantID, grantType, targets...); f != nil {
		e.countError(r, strconv.Itoa(http.StatusTemporaryRedirect))
		w.Header().Set("Location", f.Location)
		w.WriteHeader(http.StatusTemporaryRedirect)
		return true
	}
	if f := e.take(FaultThrottle, tenantID, grantType, targets...); f != nil {
		secs := int(math.Ceil(f.RetryAfter.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		e.writeFault(w, r, http.StatusTooManyRequests, style, secs)
		return true
	}
	if f := e.take(FaultServerError, tenantID, grantType, targets...); f != nil {
		e.writeFault(w, r, f.Status, style, 0)
		return true
	}
	if f := e.take(FaultTruncate, tenantID, grantType, targets...); f != nil {
		if tw, ok := w.(*truncatingWriter); ok {
			tw.truncate = true
		}
	}
	return false
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (e *Emulator) writeFault(w http.ResponseWriter, r *http.Request, status int, style faultStyle, retryAfter int) {
	e.countError(r, strconv.Itoa(status))
	switch style {
	case styleEntraJSON:
		ee := entraErr(status, "temporarily_unavailable", 90033)
		if status == http.StatusTooManyRequests {
			ee.msg = fmt.Sprintf("Too many requests. Retry after %d seconds.", retryAfter)
		}
		trace, corr := newTraceID(), newTraceID()
		writeJSON(w, status, map[string]any{
			"error":             ee.err,
			"error_description": e.description(ee, trace, corr),
			"error_codes":       []int{ee.code},
			"timestamp":         fmtStamp(e.now()),
			"trace_id":          trace,
			"correlation_id":    corr,
			"error_uri":         fmt.Sprintf("%s/error?code=%d", baseURL(r), ee.code),
		})
	case styleHTML:
		msg := http.StatusText(status)
		if status == http.StatusTooManyRequests {
			msg = fmt.Sprintf("Too many requests. Retry after %d seconds.", retryAfter)
		}
		ee := entraErr(status, "temporarily_unavailable", 90033)
		ee.msg = msg
		trace := newTraceID()
		e.renderPage(w, status, "error.html", pageData{Kind: "error", Title: "Sign in to your account",
			Message: e.description(ee, trace, newTraceID()), Trace: trace, Time: fmtStamp(e.now())})
	default:
		msg := "The service is temporarily unavailable. Please try again later."
		code := "ServiceUnavailable"
		switch {
		case status == http.StatusTooManyRequests:
			msg = fmt.Sprintf("Rate limit is exceeded. Try again in %d seconds.", retryAfter)
			code = "TooManyRequests"
		case status == http.StatusInternalServerError:
			code, msg = "InternalServerError", "An internal server error occurred."
		case status == http.StatusBadGateway:
			code, msg = "BadGateway", "The upstream service returned an invalid response."
		case status == http.StatusGatewayTimeout:
			code, msg = "GatewayTimeout", "The upstream service did not answer in time."
		}
		writeJSON(w, status, map[string]any{"error": map[string]any{"code": code, "message": msg}})
	}
}

// truncatingWriter buffers an answer so that a truncate fault can cut its
// body in half once the handler is done.
type truncatingWriter struct {
	http.ResponseWriter
	truncate bool
	status   int
	buf      bytes.Buffer
}

func (t *truncatingWriter) WriteHeader(status int) {
	if t.status == 0 {
		t.status = status
	}
}

func (t *truncatingWriter) Write(b []byte) (int, error) {
	if t.status == 0 {
		t.status = http.StatusOK
	}
	return t.buf.Write(b)
}

// Flush is a no-op: the answer is sent whole (or cut) by finish.
func (t *truncatingWriter) Flush() {}

func (t *truncatingWriter) finish() {
	if t.status == 0 {
		t.status = http.StatusOK
	}
	body := t.buf.Bytes()
	if t.truncate && len(body) > 1 {
		body = body[:len(body)/2]
	}
	t.ResponseWriter.Header().Set("Content-Length", strconv.Itoa(len(body)))
	t.ResponseWriter.WriteHeader(t.status)
	_, _ = t.ResponseWriter.Write(body)
}

// withTruncation runs h with a writer that a truncate fault can cut.
func withTruncation(w http.ResponseWriter, h func(w http.ResponseWriter)) {
	tw := &truncatingWriter{ResponseWriter: w}
	h(tw)
	tw.finish()
}
