package tools

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/clarion/sentinel/internal/connection"
	"github.com/clarion/sentinel/internal/sentinel"
)

// Error codes: stable, for agents and scripts to act on. Each Error also
// carries a sentence that says what to do.
const (
	CodeInvalidArgument      = "invalid_argument"              // fix the arguments (Field names the one)
	CodeSkillNotFound        = "skill_not_found"               // no such skill in this workspace
	CodeUnknownTool          = "unknown_tool"                  // no tool of this name
	CodeToolNotInSkill       = "tool_not_in_skill"             // attach the tool's toolset to the skill
	CodeUnknownToolset       = "unknown_toolset"               // toolset ids: sentinel-triage, sentinel-datalake
	CodeSkillExists          = "skill_exists"                  // a skill of this name exists
	CodeNotConnected         = "not_connected"                 // connect the workspace to Microsoft Sentinel
	CodeReconnectRequired    = "reconnect_required"            // a person must connect again
	CodeDefenderMCPDisabled  = "defender_mcp_not_enabled"      // AADSTS650052: run the remedy command
	CodePlatformNotEnabled   = "sentinel_platform_not_enabled" // AADSTS650052 for the data lake resource
	CodeNotOnboarded         = "not_onboarded"                 // the tenant has no Sentinel data lake
	CodeThrottled            = "throttled"                     // wait RetryAfter, then retry
	CodeNotFound             = "not_found"                     // Microsoft has no such object
	CodeAccessDenied         = "access_denied"                 // Microsoft refused the signed-in account
	CodeUpstreamError        = "upstream_error"                // Microsoft answered with an error
	CodeUnavailable          = "unavailable"                   // Microsoft could not be reached; retry later
	CodeTimeout              = "timeout"                       // Microsoft did not answer in time
	CodeInternal             = "internal"                      // Clarion's fault; logged
	CodeOK                   = "ok"                            // the audit outcome of a success
	defaultRetryAfterSeconds = 30
)

// Error is a tool call's failure, as agents see it.
type Error struct {
	Code    string
	Message string
	// Field is the argument at fault (invalid_argument).
	Field string
	// RetryAfter is how long to wait before retrying (throttled,
	// unavailable); zero when Microsoft did not say.
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// HTTPStatus is the status of the JSON API's answer for the error.
func (e *Error) HTTPStatus() int {
	switch e.Code {
	case CodeInvalidArgument, CodeUnknownToolset:
		return http.StatusBadRequest
	case CodeSkillNotFound, CodeUnknownTool, CodeToolNotInSkill, CodeNotFound:
		return http.StatusNotFound
	case CodeSkillExists, CodeNotConnected, CodeReconnectRequired, CodeDefenderMCPDisabled, CodePlatformNotEnabled, CodeNotOnboarded:
		return http.StatusConflict
	case CodeThrottled:
		return http.StatusTooManyRequests
	case CodeAccessDenied, CodeUpstreamError:
		return http.StatusBadGateway
	case CodeUnavailable:
		return http.StatusServiceUnavailable
	case CodeTimeout:
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// Text is the error as an MCP tool error's text: the sentence, then the
// code (and the wait) on a line of their own.
func (e *Error) Text() string {
	s := e.Message + "\n\nError code: " + e.Code + "."
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(" Retry after %d seconds.", retrySeconds(e.RetryAfter))
	}
	return s
}

func retrySeconds(d time.Duration) int { return int(math.Ceil(d.Seconds())) }

func invalid(field, msg string) *Error {
	return &Error{Code: CodeInvalidArgument, Field: field, Message: msg}
}

// fromToken explains why no access token could be had for the tool's
// resource.
func fromToken(t *Tool, err error) *Error {
	_, sentence, _ := connection.Explain(err)
	switch {
	case errors.Is(err, connection.ErrNotConnected):
		return &Error{Code: CodeNotConnected, Message: "This Clarion workspace is not connected to Microsoft Sentinel. A person must open Integrations → Microsoft Sentinel in Clarion and click Connect with Microsoft."}
	case errors.Is(err, connection.ErrReconnectRequired):
		msg := "Re-connect required: the Microsoft credential stored for this workspace is no longer usable (for example, consent was revoked or the sign-in expired). A person must open Integrations → Microsoft Sentinel in Clarion and click Connect with Microsoft; no tool can reach Microsoft until then."
		if sentence != "" && !strings.Contains(msg, sentence) {
			msg += " Cause: " + sentence
		}
		return &Error{Code: CodeReconnectRequired, Message: msg}
	case errors.Is(err, connection.ErrServiceNotEnabled) && t.Resource == connection.DefenderMCP:
		msg := sentence
		if msg == "" {
			msg = "The Microsoft Defender MCP service is not enabled in the tenant (AADSTS650052), so the MS Sentinel Triage tools are unavailable."
		}
		if !strings.Contains(msg, connection.DefenderMCPRemedy) {
			msg += " A tenant administrator can enable it once by running `" + connection.DefenderMCPRemedy + "` in Azure Cloud Shell (shell.azure.com)."
		}
		return &Error{Code: CodeDefenderMCPDisabled, Message: msg}
	case errors.Is(err, connection.ErrServiceNotEnabled):
		msg := sentence
		if msg == "" {
			msg = "The Microsoft Sentinel platform service is not enabled in the tenant (AADSTS650052): onboard the tenant to the Microsoft Sentinel data lake."
		}
		return &Error{Code: CodePlatformNotEnabled, Message: msg}
	case errors.Is(err, connection.ErrTransient):
		if d, ok := connection.RetryAfter(err); ok {
			return throttled(d, "Microsoft Entra is throttling token requests for this tenant")
		}
		return &Error{Code: CodeUnavailable, RetryAfter: defaultRetryAfterSeconds * time.Second,
			Message: "Microsoft Entra ID could not be reached to get an access token. Retry in a minute."}
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Code: CodeTimeout, Message: "Getting an access token from Microsoft Entra ID took too long. Retry in a minute."}
	}
	return nil
}

func throttled(d time.Duration, who string) *Error {
	msg := who + "."
	if d > 0 {
		msg += fmt.Sprintf(" Retry after %d seconds.", retrySeconds(d))
	} else {
		d = defaultRetryAfterSeconds * time.Second
		msg += fmt.Sprintf(" Microsoft did not say for how long; retry in about %d seconds.", defaultRetryAfterSeconds)
	}
	return &Error{Code: CodeThrottled, Message: msg, RetryAfter: d}
}

var notFoundRE = regexp.MustCompile(`(?i)\b(not found|notfound|resourcenotfound|does not exist|doesn't exist|no such)\b`)

// fromUpstream explains a failed call to Microsoft's MCP server.
func fromUpstream(t *Tool, args map[string]any, err error) *Error {
	if d, ok := sentinel.Throttled(err); ok {
		return throttled(d, "Microsoft is throttling this tenant's requests (HTTP 429)")
	}
	if errors.Is(err, sentinel.ErrNotOnboarded) {
		return &Error{Code: CodeNotOnboarded, Message: "The Microsoft tenant is not onboarded to the Microsoft Sentinel data lake, so the MS Sentinel Data Lake tools cannot answer. A Microsoft Sentinel administrator can onboard it in the Microsoft Defender portal (System > Settings > Microsoft Sentinel > Data lake). The MS Sentinel Triage tools keep working."}
	}
	var ue *sentinel.UpstreamError
	isUE := errors.As(err, &ue)
	switch {
	case isUE && ue.Status == 0 && (isNotFoundCode(ue.Code) || notFoundRE.MatchString(ue.Message)):
		return notFound(t, args, ue.Message)
	case isUE && (ue.Status == http.StatusUnauthorized || ue.Status == http.StatusForbidden):
		return &Error{Code: CodeAccessDenied, Message: "Microsoft refused the request (HTTP " + fmt.Sprint(ue.Status) + "): the account that connected Clarion may lack a Microsoft Sentinel or Defender role (at least Security Reader), or the tenant does not allow this tool. Microsoft said: " + ue.Message}
	case isUE && ue.Status == http.StatusNotFound:
		return &Error{Code: CodeUpstreamError, Message: "Microsoft's MCP server was not found at the configured address (HTTP 404). Check Clarion's Sentinel MCP URL."}
	case sentinel.Transient(err):
		if errors.Is(err, context.DeadlineExceeded) {
			return &Error{Code: CodeTimeout, RetryAfter: defaultRetryAfterSeconds * time.Second,
				Message: "Microsoft did not answer in time. Retry, or narrow the request (a shorter time range, fewer rows)."}
		}
		msg := "Microsoft could not be reached or answered with a temporary error. Retry in about a minute."
		if isUE {
			msg += " Microsoft said: " + ue.Error()
		}
		return &Error{Code: CodeUnavailable, RetryAfter: defaultRetryAfterSeconds * time.Second, Message: msg}
	case isUE && ue.Status == 0:
		return &Error{Code: CodeUpstreamError, Message: "Microsoft's " + t.Name + " tool answered with an error: " + ue.Message}
	case isUE:
		return &Error{Code: CodeUpstreamError, Message: "Microsoft answered with an error: " + ue.Error()}
	case errors.Is(err, sentinel.ErrQueryTooLong):
		return invalid("", fmt.Sprintf("The KQL query is longer than %d characters.", MaxKQL))
	}
	return nil
}

func isNotFoundCode(code string) bool {
	switch strings.ToLower(code) {
	case "notfound", "resourcenotfound", "itemnotfound", "not_found":
		return true
	}
	return false
}

// notFound is the not_found error of a tool; for GetIncidentById given a
// number, it says that Defender incident numbers are not Sentinel ids
// (PRODUCT.md "Agent tools").
func notFound(t *Tool, args map[string]any, upstream string) *Error {
	if t.Name == "GetIncidentById" {
		id, _ := args["incidentID"].(string)
		if numberRE.MatchString(id) {
			return &Error{Code: CodeNotFound, Field: "incidentID", Message: "No incident has the Sentinel id " + id + ". A number like this is often the Defender incident number shown in the Defender portal, and GetIncidentById does not take Defender incident numbers: it takes the Sentinel incident id (the incident's GUID, or its numeric Sentinel incident number). Call ListIncidents (for example with Search, or createdAfter/createdBefore) to find the incident and its Sentinel id (the GUID given with each incident), then call GetIncidentById with that id."}
		}
		return &Error{Code: CodeNotFound, Field: "incidentID", Message: "No incident has the Sentinel id " + id + ". Check the id, or call ListIncidents to find the incident."}
	}
	msg := "Microsoft found nothing for this " + t.Name + " request."
	if upstream != "" {
		msg += " Microsoft said: " + upstream
	}
	return &Error{Code: CodeNotFound, Message: msg}
}
