package web

import (
	"strconv"

	"github.com/clarion/sentinel/internal/connection"
	"github.com/clarion/sentinel/internal/store"
)

// The product document's troubleshooting cases, each as its own message
// with its remedy, keyed by the stable codes of package connection: the
// connect callback sends the browser back with ?error=<code> (never with
// Microsoft's text), and the connection's state carries a code too. Only
// known codes are shown; anything else gets a generic message, so a crafted
// link cannot put words on the page.

// connectNotices are the outcomes of a connect attempt (?error=<code>).
var connectNotices = map[string]notice{
	"consent_declined": {
		Title:   "Consent was declined",
		Message: "The administrator declined the permissions the Clarion Sentinel app requests, so nothing was connected.",
		Remedy:  "Click Connect with Microsoft again and accept on Microsoft's Permissions requested screen, or ask a Microsoft Entra admin who can grant tenant-wide consent to do it.",
	},
	"consent_required": {
		Title:   "Tenant-wide admin consent is required",
		Message: "The account that signed in cannot grant consent for the whole tenant, so nothing was connected.",
		Remedy:  "Click Connect with Microsoft again and sign in with a Microsoft Entra admin account that can grant tenant-wide admin consent.",
	},
	connection.CodeServiceNotEnabled: defenderMCPNotice(
		"A tenant administrator can enable it once by running this in Azure Cloud Shell (shell.azure.com), then click Connect with Microsoft again:"),
	connection.CodeNoRefreshToken: {
		Title:   "Microsoft did not return a refresh token",
		Message: "The Clarion Sentinel app needs the offline_access permission to poll on your behalf, so nothing was connected.",
		Remedy:  "Ask your Entra admin to grant offline_access, then click Connect with Microsoft again.",
	},
	connection.CodeWrongTenant: {
		Title:   "The sign-in used a different tenant than the one that granted consent",
		Message: "The account you signed in with at the second screen belongs to a different tenant than the one that granted admin consent, so nothing was connected.",
		Remedy:  "Click Connect with Microsoft again and sign in with the same account that approved the consent.",
	},
	connection.CodeTenantMismatch: {
		Title:   "This workspace's monitors belong to another tenant",
		Message: "The sign-in was for a different Microsoft Entra tenant than the one this workspace's Sentinel monitors poll, so the connection was not replaced.",
		Remedy:  "To connect the other tenant, disconnect Sentinel first (this removes its monitors; alerts stay), then connect again.",
	},
	connection.CodeInvalidState: {
		Title:   "This connect link has expired or was already used",
		Message: "Connecting must be finished within ten minutes, in the browser tab where it started. Nothing was connected.",
		Remedy:  "Start again with Connect with Microsoft.",
	},
	connection.CodeConsentFailed: {
		Title:   "Microsoft did not complete the admin consent",
		Message: "Nothing was connected.",
		Remedy:  "Start again with Connect with Microsoft. If it keeps failing, ask your Entra admin to check the Clarion Sentinel app in the tenant.",
	},
	connection.CodeSignInFailed: {
		Title:   "Microsoft did not complete the sign-in",
		Message: "Nothing was connected.",
		Remedy:  "Start again with Connect with Microsoft and sign in with the account that approved the consent.",
	},
	connection.CodeMicrosoftUnavailable: {
		Title:   "Microsoft Entra is temporarily unavailable",
		Message: "Microsoft Entra did not answer in time, so nothing was connected.",
		Remedy:  "Try again in a minute.",
	},
	"internal": {
		Title:   "Something went wrong on Clarion's side while connecting",
		Message: "Nothing was connected; the error was logged.",
		Remedy:  "Try again in a moment.",
	},
}

func defenderMCPNotice(remedy string) notice {
	return notice{
		Title: "“Microsoft Defender MCP service” not enabled (AADSTS650052)",
		Message: "Your tenant has no service principal for the Microsoft Defender MCP resource that backs the Sentinel triage tools — " +
			"Microsoft only provisions it for some clients while the feature is in preview.",
		Remedy:  remedy,
		Command: connection.DefenderMCPRemedy,
	}
}

// connectNotice is the message for ?error=<code> of the connect callback.
func connectNotice(code string) notice {
	n, ok := connectNotices[code]
	if !ok {
		n = notice{Title: "Connecting did not complete", Message: "Nothing was connected.", Remedy: "Start again with Connect with Microsoft."}
		code = "unknown"
	}
	n.ID, n.Kind = "connect-error-"+code, "error"
	return n
}

// stateNotice explains a degraded connection, or nil.
func stateNotice(st connection.Status) *notice {
	if st.State != store.StateDegraded {
		return nil
	}
	var n notice
	switch st.Code {
	case connection.CodeDefenderMCPNotEnabled:
		n = defenderMCPNotice("Incident polling and the Data Lake tools keep working; the MS Sentinel Triage tools answer with this remedy until it is applied. " +
			"A tenant administrator can enable the service once by running this in Azure Cloud Shell (shell.azure.com):")
	case connection.CodeSentinelPlatformNotEnabled:
		n = notice{Title: "Microsoft Sentinel platform service not enabled (AADSTS650052)",
			Message: "Incident polling and the Data Lake tools are unavailable.",
			Remedy:  "Onboard the tenant to the Microsoft Sentinel data lake, then click Connect with Microsoft."}
	default:
		n = notice{Title: "Part of the integration is unavailable", Message: st.Sentence}
	}
	n.ID, n.Kind = "degraded-"+st.Code, "warning"
	return &n
}

// doneNotice confirms what the person just did (?done=<what>).
func doneNotice(what, removed string) (notice, bool) {
	n := notice{ID: "done-" + what, Kind: "success"}
	switch what {
	case "connected":
		n.Title = "Microsoft Sentinel is connected."
		n.Message = "Add a monitor to start ingesting incidents as alerts."
	case "monitor_created":
		n.Title = "Monitor added."
		n.Message = "It polls incidents created from now on; the first poll runs within a minute."
	case "monitor_updated":
		n.Title = "Monitor saved."
	case "monitor_deleted":
		n.Title = "Monitor deleted."
		n.Message = "Alerts it already ingested stay."
	case "disconnected":
		k, _ := strconv.Atoi(removed)
		n.Title = "Microsoft Sentinel was disconnected."
		n.Message = "Polling stopped. Alerts already ingested stay."
		if k > 0 {
			n.Message = "Polling stopped and " + strconv.Itoa(k) + " monitor(s) were removed. Alerts already ingested stay."
		}
	default:
		return notice{}, false
	}
	return n, true
}

// stateLabels are the connection states as the pages name them.
var stateLabels = map[string]string{
	store.StateConnected:         "Connected",
	store.StateReconnectRequired: "Re-connect required",
	store.StateDegraded:          "Degraded",
	connection.StateDisconnected: "Not connected",
}

// healthLabels are the monitor health statuses as the pages name them.
var healthLabels = map[string]string{
	store.HealthPending:   "Pending first poll",
	store.HealthHealthy:   "Healthy",
	store.HealthThrottled: "Throttled by Microsoft",
	store.HealthFailing:   "Failing",
	store.HealthPaused:    "Paused: re-connect required",
}
