package entra

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Error is an error answer from Entra: the JSON body of a token-endpoint
// failure, or the error parameters of a redirect to RedirectURI.
//
// Body: {"error","error_description","error_codes":[n],"timestamp",
// "trace_id","correlation_id","error_uri"}. Redirect: error,
// error_description (with "AADSTSnnnnn: ..." inside), state.
type Error struct {
	// HTTPStatus is the token endpoint's status; 0 for a redirect.
	HTTPStatus int
	// Code is the OAuth "error" value: invalid_grant, invalid_client,
	// access_denied, consent_required, temporarily_unavailable, ...
	Code        string
	Description string
	// ErrorCodes are the AADSTS numbers, from error_codes or, failing that,
	// from "AADSTSnnnnn" in the description.
	ErrorCodes    []int
	TraceID       string
	CorrelationID string
	// RetryAfter is the Retry-After of a 429 or 503 answer (0 if none).
	RetryAfter time.Duration
	// Malformed: the HTTP error body was cut or not JSON.
	Malformed bool
}

// Error names the OAuth error, the AADSTS codes and the ids Microsoft
// support asks for; it never carries anything that was sent.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("entra: ")
	switch {
	case e.Code != "":
		b.WriteString(e.Code)
	case e.HTTPStatus != 0:
		b.WriteString("http " + strconv.Itoa(e.HTTPStatus))
	default:
		b.WriteString("error")
	}
	for i, n := range e.ErrorCodes {
		if i == 0 {
			b.WriteString(" (")
		} else {
			b.WriteString(", ")
		}
		b.WriteString("AADSTS" + strconv.Itoa(n))
		if i == len(e.ErrorCodes)-1 {
			b.WriteString(")")
		}
	}
	if e.HTTPStatus != 0 && e.Code != "" {
		b.WriteString(" http " + strconv.Itoa(e.HTTPStatus))
	}
	if e.Malformed {
		b.WriteString(" malformed body")
	}
	if e.RetryAfter > 0 {
		b.WriteString(" retry after " + e.RetryAfter.String())
	}
	if d := e.Summary(); d != "" {
		b.WriteString(": " + d)
	}
	if e.TraceID != "" {
		b.WriteString(" trace_id=" + e.TraceID)
	}
	if e.CorrelationID != "" {
		b.WriteString(" correlation_id=" + e.CorrelationID)
	}
	return b.String()
}

// Summary is the first line of the description, without the trace,
// correlation and timestamp lines Entra appends, at most 200 bytes.
func (e *Error) Summary() string {
	d := e.Description
	if i := strings.IndexAny(d, "\r\n"); i >= 0 {
		d = d[:i]
	}
	if i := strings.Index(d, " Trace ID:"); i >= 0 {
		d = d[:i]
	}
	d = strings.TrimSpace(d)
	if len(d) > 200 {
		d = d[:200]
		for len(d) > 0 && !utf8.ValidString(d) {
			d = d[:len(d)-1]
		}
		d += "…"
	}
	return d
}

// Has reports whether the AADSTS code n is among e's codes.
func (e *Error) Has(n int) bool { return slices.Contains(e.ErrorCodes, n) }

var (
	aadstsRe        = regexp.MustCompile(`AADSTS(\d{4,7})`)
	traceIDRe       = regexp.MustCompile(`Trace ID:\s*([0-9A-Fa-f-]{8,})`)
	correlationIDRe = regexp.MustCompile(`Correlation ID:\s*([0-9A-Fa-f-]{8,})`)
)

type errorJSON struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	ErrorCodes       []int  `json:"error_codes"`
	TraceID          string `json:"trace_id"`
	CorrelationID    string `json:"correlation_id"`
}

// parseErrorBody reads an error answer of the token endpoint. A body that is
// not JSON gives an *Error with the status only.
func parseErrorBody(status int, body []byte) *Error {
	e := &Error{HTTPStatus: status}
	var ej errorJSON
	if json.Unmarshal(body, &ej) != nil {
		return e
	}
	e.Code = strings.TrimSpace(ej.Error)
	e.Description = ej.ErrorDescription
	e.ErrorCodes = ej.ErrorCodes
	e.TraceID = ej.TraceID
	e.CorrelationID = ej.CorrelationID
	fillFromDescription(e)
	return e
}

// ErrorFromQuery reads the error parameters of a redirect to RedirectURI
// (admin consent or sign-in). It returns nil when q has no "error".
func ErrorFromQuery(q url.Values) *Error {
	code := strings.TrimSpace(q.Get("error"))
	if code == "" {
		return nil
	}
	e := &Error{Code: code, Description: q.Get("error_description")}
	if s := q.Get("error_codes"); s != "" {
		for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
			if n, err := strconv.Atoi(f); err == nil {
				e.ErrorCodes = append(e.ErrorCodes, n)
			}
		}
	}
	e.TraceID = q.Get("trace_id")
	e.CorrelationID = q.Get("correlation_id")
	fillFromDescription(e)
	return e
}

// fillFromDescription takes AADSTS codes and ids from the description when
// the structured fields lack them.
func fillFromDescription(e *Error) {
	if len(e.ErrorCodes) == 0 {
		for _, m := range aadstsRe.FindAllStringSubmatch(e.Description, -1) {
			if n, err := strconv.Atoi(m[1]); err == nil && !slices.Contains(e.ErrorCodes, n) {
				e.ErrorCodes = append(e.ErrorCodes, n)
			}
		}
	}
	if e.TraceID == "" {
		if m := traceIDRe.FindStringSubmatch(e.Description); m != nil {
			e.TraceID = m[1]
		}
	}
	if e.CorrelationID == "" {
		if m := correlationIDRe.FindStringSubmatch(e.Description); m != nil {
			e.CorrelationID = m[1]
		}
	}
}

// Class is what an error means for a connection.
type Class int

// Classes, MICROSOFT.md §1.
const (
	// Other: none of the below (a bad scope, a misconfigured app, ...).
	// Not retried automatically; the state of a connection is unchanged.
	Other Class = iota
	// GrantDead: the refresh token (or code) can never work again: expired,
	// revoked, password changed, consent revoked, app removed. The
	// connection needs a person: re-connect required.
	GrantDead
	// ServiceNotEnabled: the resource has no service principal in the
	// tenant (AADSTS650052, 500011).
	ServiceNotEnabled
	// ConsentDeclined: the admin declined, or consent is missing.
	ConsentDeclined
	// WrongTenant: the account or the code belongs to another tenant.
	WrongTenant
	// Transient: 5xx, 429, temporarily_unavailable, timeouts, network
	// errors, truncated bodies. Retry with backoff; never change state.
	Transient
)

// String is the class name in snake_case, for logs.
func (c Class) String() string {
	switch c {
	case GrantDead:
		return "grant_dead"
	case ServiceNotEnabled:
		return "service_not_enabled"
	case ConsentDeclined:
		return "consent_declined"
	case WrongTenant:
		return "wrong_tenant"
	case Transient:
		return "transient"
	default:
		return "other"
	}
}

// AADSTS codes Clarion acts on (Microsoft Entra authentication and
// authorization error codes).
const (
	CodeRefreshTokenExpired     = 700082 // refresh token expired due to inactivity
	CodeGrantExpired            = 70008  // code or refresh token expired
	CodePasswordChanged         = 50173  // grant revoked: password changed / sessions revoked
	CodeGrantInvalid            = 70000  // invalid grant
	CodeSignInFrequency         = 70043  // Conditional Access sign-in frequency
	CodeConsentMissing          = 65001  // delegation does not exist (consent revoked)
	CodeAppNotFound             = 700016 // app not found in the tenant (removed)
	CodeServiceNotEnabled       = 650052 // tenant has no service principal for a resource
	CodeResourceNotFound        = 500011 // resource principal not found in the tenant
	CodeUserDeclinedConsent     = 65004
	CodeAdminConsentRequired    = 90094
	CodeUserNotInTenant         = 90072
	CodeUserUnauthorized        = 50020
	CodeCodeForOtherTenant      = 700005
	CodeInvalidClientSecret     = 7000215
	CodeClientSecretExpired     = 7000222
	CodeClientSecretKeysExpired = 7000218 // request body must contain client_assertion or client_secret
)

// ErrTenantMismatch: an id token was issued for a tenant other than the one
// expected. Classified WrongTenant.
var ErrTenantMismatch = errors.New("entra: id token is for another tenant")

// Classify tells what err means. It looks at the OAuth error first and at
// the AADSTS codes next, except for the codes that name a more precise cause
// than the error they come with (650052 arrives as invalid_client, 700005
// as invalid_grant, 65001 as invalid_grant or consent_required).
func Classify(err error) Class {
	if err == nil {
		return Other
	}
	if errors.Is(err, ErrTenantMismatch) {
		return WrongTenant
	}
	var e *Error
	if errors.As(err, &e) {
		return classifyEntra(e)
	}
	if errors.Is(err, ErrMalformedResponse) || errors.Is(err, io.ErrUnexpectedEOF) {
		return Transient
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return Transient
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return Transient
	}
	var ue *url.Error
	if errors.As(err, &ue) && !errors.Is(err, context.Canceled) {
		// A transport failure that is not a net.Error (connection reset
		// surfacing as io.EOF, TLS handshake, ...).
		return Transient
	}
	return Other
}

func classifyEntra(e *Error) Class {
	if e.HTTPStatus == 429 || e.HTTPStatus >= 500 {
		return Transient
	}
	switch {
	case e.Has(CodeServiceNotEnabled), e.Has(CodeResourceNotFound):
		return ServiceNotEnabled
	case e.Has(CodeUserNotInTenant), e.Has(CodeUserUnauthorized), e.Has(CodeCodeForOtherTenant):
		return WrongTenant
	case e.Has(CodeAppNotFound):
		return GrantDead
	}
	switch e.Code {
	case "temporarily_unavailable", "server_error":
		return Transient
	case "access_denied", "consent_required":
		return ConsentDeclined
	case "invalid_grant", "interaction_required":
		// RFC 6749: invalid_grant means the grant "is invalid, expired,
		// revoked"; interaction_required means only a person signing in
		// again can fix it. Either way the stored grant is dead.
		return GrantDead
	case "invalid_client":
		if clientCredentialsProblem(e) {
			// Clarion's own secret is wrong or expired: reconnecting
			// would not help, and every connection would look dead.
			return Other
		}
		// The app was removed from (or disabled in) the tenant.
		return GrantDead
	}
	switch {
	case e.Has(CodeConsentMissing):
		return GrantDead
	case e.Has(CodeUserDeclinedConsent), e.Has(CodeAdminConsentRequired):
		return ConsentDeclined
	case e.Has(CodeRefreshTokenExpired), e.Has(CodeGrantExpired), e.Has(CodePasswordChanged),
		e.Has(CodeGrantInvalid), e.Has(CodeSignInFrequency):
		return GrantDead
	}
	if e.HTTPStatus != 0 && e.Malformed {
		// A 4xx whose body was cut: nothing says the grant is dead.
		return Transient
	}
	return Other
}

func clientCredentialsProblem(e *Error) bool {
	return e.Has(CodeInvalidClientSecret) || e.Has(CodeClientSecretExpired) || e.Has(CodeClientSecretKeysExpired)
}

// RetryAfter returns the Retry-After Entra sent with a 429 or 5xx answer.
func RetryAfter(err error) (time.Duration, bool) {
	var e *Error
	if errors.As(err, &e) && e.RetryAfter > 0 {
		return e.RetryAfter, true
	}
	return 0, false
}

// Explanation is an error put into words for a SOC engineer: a stable
// machine code and one sentence they can act on.
type Explanation struct {
	Class    Class
	Code     string
	Sentence string
}

// Explain maps err to its class, a stable code and a sentence. The sentence
// names AADSTS codes (useful with Microsoft support) but nothing secret.
func Explain(err error) Explanation {
	class := Classify(err)
	x := Explanation{Class: class}
	var e *Error
	isEntra := errors.As(err, &e)
	switch class {
	case GrantDead:
		x.Code, x.Sentence = explainGrantDead(e)
	case ServiceNotEnabled:
		x.Code = "service_not_enabled"
		x.Sentence = "A Microsoft service the app needs is not enabled in your tenant" + aadsts(e) +
			": a tenant administrator must create its service principal."
	case ConsentDeclined:
		if isEntra && (e.Code == "access_denied" || e.Has(CodeUserDeclinedConsent)) && !e.Has(CodeAdminConsentRequired) {
			x.Code = "consent_declined"
			x.Sentence = "The administrator declined the requested permissions" + aadsts(e) +
				", so nothing was connected. Connect again and accept the permissions, or ask an Entra admin to."
		} else {
			x.Code = "consent_required"
			x.Sentence = "Tenant-wide admin consent is required" + aadsts(e) +
				": sign in with a Microsoft Entra account that can grant admin consent and connect again."
		}
	case WrongTenant:
		x.Code = "wrong_tenant"
		x.Sentence = "The sign-in used a different tenant than the one that granted consent" + aadsts(e) +
			". Connect again and sign in with the account that approved the consent."
	case Transient:
		x.Code, x.Sentence = explainTransient(err, e)
	default:
		if isEntra && e.Code == "invalid_client" {
			x.Code = "client_credentials_invalid"
			x.Sentence = "Microsoft Entra rejected Clarion's own app credentials" + aadsts(e) +
				"; the Clarion administrator must renew the Clarion Sentinel app's client secret."
		} else if isEntra {
			x.Code = "entra_error"
			what := e.Code
			if what == "" {
				what = "HTTP " + strconv.Itoa(e.HTTPStatus)
			}
			x.Sentence = "Microsoft Entra rejected the request (" + what + joinCodes(e) + ")."
		} else if errors.Is(err, context.Canceled) {
			x.Code = "canceled"
			x.Sentence = "The request to Microsoft Entra was canceled."
		} else {
			x.Code = "entra_error"
			x.Sentence = "The request to Microsoft Entra failed."
		}
	}
	return x
}

func explainGrantDead(e *Error) (code, sentence string) {
	const again = " Reconnect Sentinel (Connect with Microsoft) to resume incident polling and agent queries."
	switch {
	case e == nil:
		return "grant_invalid", "Microsoft no longer accepts the stored credential." + again
	case e.Has(CodeAppNotFound) || (e.Code == "invalid_client" && !e.Has(CodeConsentMissing)):
		return "app_removed", "Access revoked: the Clarion Sentinel app was removed from the tenant or disabled there" +
			aadsts(e) + "." + again
	case e.Has(CodeConsentMissing):
		return "consent_revoked", "Access revoked: admin consent for the Clarion Sentinel app was removed from the tenant" +
			aadsts(e) + "." + again
	case e.Has(CodeRefreshTokenExpired):
		return "refresh_token_expired", "The Microsoft refresh token expired after a long period without use" +
			aadsts(e) + "." + again
	case e.Has(CodeGrantExpired):
		return "grant_expired", "The Microsoft credential expired" + aadsts(e) + "." + again
	case e.Has(CodePasswordChanged):
		return "password_changed", "Microsoft revoked the credential because the signed-in account's password changed or its sessions were revoked" +
			aadsts(e) + "." + again
	case e.Has(CodeSignInFrequency):
		return "signin_frequency", "A Conditional Access sign-in frequency policy requires the account to sign in again" +
			aadsts(e) + "." + again
	case e.Code == "interaction_required":
		return "interaction_required", "Microsoft requires the account to sign in again (multi-factor authentication or Conditional Access)" +
			aadsts(e) + "." + again
	default:
		return "grant_invalid", "Microsoft no longer accepts the stored credential" + aadsts(e) + "." + again
	}
}

func explainTransient(err error, e *Error) (code, sentence string) {
	switch {
	case e != nil && e.HTTPStatus == 429:
		s := "Microsoft Entra is throttling requests"
		if e.RetryAfter > 0 {
			s += "; retrying after " + e.RetryAfter.Round(time.Second).String()
		} else {
			s += "; retrying with backoff"
		}
		return "throttled", s + "."
	case e != nil && (e.HTTPStatus >= 500 || e.Code == "temporarily_unavailable" || e.Code == "server_error"):
		return "entra_unavailable", "Microsoft Entra is temporarily unavailable" + statusText(e) + "; retrying with backoff."
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return "timeout", "Microsoft Entra did not answer in time; retrying with backoff."
	case (e != nil && e.Malformed) || errors.Is(err, ErrMalformedResponse) || errors.Is(err, io.ErrUnexpectedEOF):
		return "malformed_response", "Microsoft Entra sent an incomplete answer; retrying with backoff."
	default:
		return "network_error", "Microsoft Entra could not be reached; retrying with backoff."
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func statusText(e *Error) string {
	if e.HTTPStatus != 0 {
		return " (HTTP " + strconv.Itoa(e.HTTPStatus) + ")"
	}
	return ""
}

// aadsts is " (AADSTS650052)" or "".
func aadsts(e *Error) string {
	if e == nil || len(e.ErrorCodes) == 0 {
		return ""
	}
	parts := make([]string, len(e.ErrorCodes))
	for i, n := range e.ErrorCodes {
		parts[i] = "AADSTS" + strconv.Itoa(n)
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// joinCodes is ", AADSTS70011" or "".
func joinCodes(e *Error) string {
	if len(e.ErrorCodes) == 0 {
		return ""
	}
	var b strings.Builder
	for _, n := range e.ErrorCodes {
		fmt.Fprintf(&b, ", AADSTS%d", n)
	}
	return b.String()
}
