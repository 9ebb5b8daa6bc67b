package sentinel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"time"
	"unicode"
)

// ErrNotOnboarded reports that the tenant is not onboarded to the Microsoft
// Sentinel data lake, so the data-exploration tools cannot answer for it.
var ErrNotOnboarded = errors.New("sentinel: tenant is not onboarded to the Microsoft Sentinel data lake")

// UpstreamError is a failure reported by Microsoft: an HTTP status other than
// success (Status, with the Retry-After it asked for), or an error a tool
// answered with (Status 0, Code "tool_error" or Microsoft's own code).
// Message is a short text safe to show and log: never a body or a token.
type UpstreamError struct {
	Status     int
	RetryAfter time.Duration
	Code       string
	Message    string

	cause error // ErrNotOnboarded, when the answer says so
}

// Error gives the status (or "tool error"), the wait asked for, the code and
// the short message.
func (e *UpstreamError) Error() string {
	var b strings.Builder
	if e.Status != 0 {
		fmt.Fprintf(&b, "upstream HTTP %d", e.Status)
		if t := http.StatusText(e.Status); t != "" {
			b.WriteString(" " + t)
		}
		if e.RetryAfter > 0 {
			fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
		}
	} else {
		b.WriteString("upstream tool error")
	}
	if e.Code != "" {
		b.WriteString(": " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	return b.String()
}

// Unwrap exposes ErrNotOnboarded when the answer said so.
func (e *UpstreamError) Unwrap() error { return e.cause }

// Throttled reports whether err is Microsoft throttling the tenant (HTTP
// 429), and how long it asked to wait (0 when it did not say).
func Throttled(err error) (retryAfter time.Duration, ok bool) {
	var ue *UpstreamError
	if errors.As(err, &ue) && ue.Status == http.StatusTooManyRequests {
		return ue.RetryAfter, true
	}
	return 0, false
}

// Transient reports whether asking again later may succeed without anyone
// doing anything: HTTP 5xx, 408 and 429 (see Throttled for the wait),
// timeouts, connection failures, and truncated or invalid JSON answers. A
// cancelled context is not transient: the caller gave up.
func Transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var ue *UpstreamError
	if errors.As(err, &ue) && ue.Status != 0 {
		return ue.Status >= 500 || ue.Status == http.StatusRequestTimeout || ue.Status == http.StatusTooManyRequests
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrInvalidResponse) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) {
		return true
	}
	var te *transportError
	if errors.As(err, &te) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne)
}

// Unauthorized reports whether Microsoft refused the token or the access
// (HTTP 401 or 403).
func Unauthorized(err error) bool {
	var ue *UpstreamError
	return errors.As(err, &ue) && (ue.Status == http.StatusUnauthorized || ue.Status == http.StatusForbidden)
}

// transportError is a request that got no usable answer: the connection
// failed, or the answer was cut off.
type transportError struct {
	what string
	err  error
}

func (e *transportError) Error() string {
	if e.err == nil {
		return e.what
	}
	return e.what + ": " + e.err.Error()
}

func (e *transportError) Unwrap() error { return e.err }

// errorFromMessage builds the error for an error a tool (or a JSON error
// object) answered with.
func errorFromMessage(code, message string) error {
	ue := &UpstreamError{Code: safeText(code, 64), Message: safeText(message, 200)}
	if ue.Code == "" {
		ue.Code = "tool_error"
	}
	if saysNotOnboarded(code) || saysNotOnboarded(message) {
		ue.cause = ErrNotOnboarded
	}
	return ue
}

// saysNotOnboarded recognises Microsoft's answer for a tenant without the
// Sentinel data lake ("not onboarded", "NotOnboarded", "onboard the tenant").
func saysNotOnboarded(s string) bool {
	s = strings.ToLower(s)
	return strings.Contains(s, "not onboarded") || strings.Contains(s, "notonboarded") ||
		strings.Contains(s, "not_onboarded") || strings.Contains(s, "isn't onboarded") ||
		strings.Contains(s, "is not onboarded") || (strings.Contains(s, "onboard") && strings.Contains(s, "data lake"))
}

var (
	jwtLike    = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}(\.[A-Za-z0-9_-]*)?`)
	bearerLike = regexp.MustCompile(`(?i)bearer\s+[A-Za-z0-9._~+/=-]+`)
)

// safeText makes a text from Microsoft fit for an error message: one line, no
// control characters, anything shaped like a token removed, at most max
// bytes.
func safeText(s string, max int) string {
	s = jwtLike.ReplaceAllString(s, "[redacted]")
	s = bearerLike.ReplaceAllString(s, "Bearer [redacted]")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		s = TruncateText(s, max) + "…"
	}
	return s
}
