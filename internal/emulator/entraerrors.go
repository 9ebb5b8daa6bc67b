package emulator

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// entraError is an answer of Entra's in its error shape.
type entraError struct {
	status   int    // HTTP status of the JSON answer
	err      string // OAuth error code: invalid_grant, invalid_client, ...
	code     int    // AADSTS number
	msg      string // the text after "AADSTSnnnnn: "
	suberror string
}

// aadstsMessages are Entra's texts for the codes the emulator answers
// with; %s verbs take the arguments given to entraErr.
var aadstsMessages = map[int]string{
	28000:   "Provided value for the input parameter scope is not valid because it contains more than one resource. Scope %s is not valid.",
	50011:   "The redirect URI '%s' specified in the request does not match the redirect URIs configured for the application '%s'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal.",
	50020:   "User account '%s' from identity provider does not exist in tenant '%s' and cannot access the application '%s' in that tenant.",
	50058:   "A silent sign-in request was sent but no user is signed in.",
	50076:   "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '%s'.",
	50173:   "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password. The grant was issued on '%s' and the TokensValidFrom date (before which tokens are not valid) for this user is '%s'.",
	53003:   "Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.",
	54005:   "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
	65001:   "The user or administrator has not consented to use the application with ID '%s' named '%s'. Send an interactive authorization request for this user and resource.",
	65004:   "User declined to consent to access the app.",
	70000:   "The request was denied because one or more scopes requested are unauthorized or expired. The user must first sign in and grant the client application access to the requested scope.",
	70003:   "The app requested an unsupported grant type '%s'.",
	70008:   "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.",
	70011:   "The provided value for the input parameter 'scope' is not valid. The scope %s is not valid.",
	70043:   "The refresh token has expired or is invalid due to sign-in frequency checks by conditional access. The token was issued on %s and the maximum allowed lifetime for this request is 43200.",
	90002:   "Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.",
	90033:   "A transient error has occurred. Please try again.",
	90072:   "User account '%s' from identity provider does not exist in tenant '%s' and cannot access the application '%s' in that tenant. The account needs to be added as an external user in the tenant first.",
	90094:   "The grant requires admin permission.",
	90130:   "Application '%s' (%s) is not supported over the /common or /consumers endpoints. Please use the /organizations or tenant-specific endpoint.",
	500011:  "The resource principal named %s was not found in the tenant named %s. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.",
	500112:  "The reply address '%s' does not match the reply address '%s' provided when requesting Authorization code.",
	501481:  "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
	501491:  "Invalid code_challenge_method '%s'. Supported methods are S256 and plain.",
	650057:  "Invalid resource. The client has requested access to a resource which isn't listed in the requested permissions in the client's application registration. Requested scope: %s.",
	650052:  "The app is trying to access a service '%s'(Microsoft Defender MCP) that your organization '%s' lacks a service principal for. Contact your IT Admin to review the configuration of your service subscriptions or consent to the application in order to create the required service principal.",
	700005:  "Provided Authorization Code is intended to use against other tenant, thus rejected.",
	700016:  "Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
	700027:  "Client assertion failed signature validation. (The Microsoft emulator accepts client secrets only.)",
	700054:  "response_type '%s' is not enabled for the application.",
	700082:  "The refresh token has expired due to inactivity. The token was issued on %s and was inactive for 90.00:00:00.",
	900144:  "The request body must contain the following parameter: '%s'.",
	7000215: "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.",
	7000218: "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
	9002313: "Invalid request. Request is malformed or invalid.",
}

// defaultOAuthError is the OAuth error Entra pairs with an AADSTS code.
func defaultOAuthError(code int) string {
	switch code {
	case 700082, 70008, 50173, 70043, 70000, 65001, 54005, 500112, 501481, 700005, 9002313, 50076, 50079:
		return "invalid_grant"
	case 700016, 7000215, 7000218, 650052, 650057, 700027:
		return "invalid_client"
	case 500011:
		return "invalid_resource"
	case 65004, 53003:
		return "access_denied"
	case 90094:
		return "consent_required"
	case 70011, 28000:
		return "invalid_scope"
	case 70003:
		return "unsupported_grant_type"
	case 700054:
		return "unsupported_response_type"
	case 90033:
		return "temporarily_unavailable"
	case 90002:
		return "invalid_tenant"
	case 50058:
		return "login_required"
	}
	return "invalid_request"
}

// entraErr builds an error answer; args fill the code's message.
func entraErr(status int, oauthErr string, code int, args ...any) *entraError {
	if oauthErr == "" {
		oauthErr = defaultOAuthError(code)
	}
	msg, ok := aadstsMessages[code]
	if !ok {
		msg = fmt.Sprintf("Error %d returned by the Microsoft emulator.", code)
	} else if n := strings.Count(msg, "%s"); n > 0 {
		a := make([]any, n)
		for i := range a {
			if i < len(args) {
				a[i] = args[i]
			} else {
				a[i] = ""
			}
		}
		msg = fmt.Sprintf(msg, a...)
	}
	ee := &entraError{status: status, err: oauthErr, code: code, msg: msg}
	if code == 65001 {
		ee.suberror = "consent_required"
	}
	return ee
}

func newTraceID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// description renders error_description the way Entra does: the AADSTS
// text followed by trace id, correlation id and time stamp.
func (e *Emulator) description(ee *entraError, trace, corr string) string {
	return fmt.Sprintf("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s",
		ee.code, ee.msg, trace, corr, fmtStamp(e.now()))
}

// writeEntraError writes the JSON error body of Entra's token endpoint.
// invalid_client is answered with 401, as Entra does for a failed client
// authentication; the rest with the error's own status (400 by default).
func (e *Emulator) writeEntraError(w http.ResponseWriter, r *http.Request, ee *entraError) {
	status := ee.status
	if status == 0 {
		status = http.StatusBadRequest
	}
	if ee.err == "invalid_client" && status < 500 {
		status = http.StatusUnauthorized
	}
	trace, corr := newTraceID(), newTraceID()
	body := map[string]any{
		"error":             ee.err,
		"error_description": e.description(ee, trace, corr),
		"error_codes":       []int{ee.code},
		"timestamp":         fmtStamp(e.now()),
		"trace_id":          trace,
		"correlation_id":    corr,
		"error_uri":         fmt.Sprintf("%s/error?code=%d", baseURL(r), ee.code),
	}
	if ee.suberror != "" {
		body["suberror"] = ee.suberror
	}
	e.countError(r, ee.err)
	writeJSON(w, status, body)
}

// redirectError sends the browser back to the app with the error in the
// query string, as Entra does once the redirect URI is known to be valid.
func (e *Emulator) redirectError(w http.ResponseWriter, r *http.Request, redirectURI, state string, ee *entraError) {
	trace, corr := newTraceID(), newTraceID()
	q := url.Values{}
	q.Set("error", ee.err)
	q.Set("error_description", e.description(ee, trace, corr))
	q.Set("error_uri", fmt.Sprintf("%s/error?code=%d", baseURL(r), ee.code))
	if ee.suberror != "" {
		q.Set("error_subcode", ee.suberror)
	}
	if state != "" {
		q.Set("state", state)
	}
	e.countError(r, ee.err)
	http.Redirect(w, r, appendQuery(redirectURI, q), http.StatusFound)
}

func appendQuery(base string, q url.Values) string {
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + q.Encode()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
