package web_test

import (
	"errors"
	"strconv"
	"testing"

	"github.com/clarion/sentinel/internal/connection"
	"github.com/clarion/sentinel/internal/emulator"
	"github.com/clarion/sentinel/internal/entra"
)

// TestConnectThroughEmulatorPages: the not-connected page lists what the
// connection provides and the four permissions; Connect with Microsoft
// leads through Microsoft's (the emulator's) consent and sign-in pages,
// clicked in the browser, and back to the page, which then shows the
// tenant, who connected, when, and the state.
func TestConnectThroughEmulatorPages(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.signIn()
	e.open("/integrations", "#integration-sentinel")
	mustEqual(t, "integrations list state", e.text("#sentinel-state"), "Not connected")
	e.shot("1-integrations")

	e.click("#integration-sentinel a", "#connect")
	for i, want := range []string{
		"Maintain access to data you have given it access to",
		"Sign in and read user profile",
		"Read securitycenter information by MCP",
		"Sentinel Platform Delegated API Access",
	} {
		got := js[string](e, `document.querySelectorAll("#permissions tbody th")[`+strconv.Itoa(i)+`].textContent`)
		mustEqual(t, "permission", got, want)
	}
	e.shot("2-not-connected")

	e.click("#connect", `form[data-emulator-form="consent"]`)
	e.shot("3-microsoft-consent")
	e.click("#accept", `form[data-emulator-form="signin"]`)
	e.shot("4-microsoft-sign-in")
	e.click("#accept", "#done-connected")
	mustEqual(t, "state", e.text("#connection-state"), "Connected")
	contains(t, "tenant", e.text("#conn-tenant"), emulator.ContosoTenantID)
	mustEqual(t, "connected by", e.text("#conn-account"), emulator.ContosoAdminUsername)
	contains(t, "connected at", e.text("#conn-at"), " UTC")
	mustEqual(t, "state row", e.text("#conn-state"), "Connected")
	e.shot("5-connected")

	e.open("/integrations", "#integration-sentinel")
	mustEqual(t, "integrations list state", e.text("#sentinel-state"), "Connected")
}

// TestConnectProblemsShowTheirRemedy: each troubleshooting case of the
// product document that happens while connecting is shown as its own
// message with its remedy, and nothing is connected.
func TestConnectProblemsShowTheirRemedy(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.signIn()
	tests := []struct {
		name   string
		fault  func()
		cancel bool // the admin clicks Cancel on the consent page
		id     string
		says   []string
	}{
		{
			name: "consent declined", cancel: true, id: "#connect-error-consent_declined",
			says: []string{"Consent was declined", "accept on Microsoft's Permissions requested screen"},
		},
		{
			name: "Defender MCP not enabled",
			fault: func() {
				e.emu.SetFault(emulator.Fault{Kind: emulator.FaultDefenderNotProvisioned, TenantID: emulator.ContosoTenantID, Count: 1})
			},
			id: "#connect-error-service_not_enabled",
			says: []string{"Microsoft Defender MCP service", "AADSTS650052", "Azure Cloud Shell",
				"az ad sp create --id 7b7b3966-1961-47b5-b080-43ca5482e21c"},
		},
		{
			name:  "no refresh token",
			fault: func() { e.emu.SetFault(emulator.Fault{Kind: emulator.FaultNoRefreshToken, Count: 1}) },
			id:    "#connect-error-no_refresh_token",
			says:  []string{"Microsoft did not return a refresh token", "offline_access"},
		},
		{
			name:  "other tenant",
			fault: func() { e.emu.SetFault(emulator.Fault{Kind: emulator.FaultWrongTenantSignIn, Count: 1}) },
			id:    "#connect-error-wrong_tenant",
			says:  []string{"different tenant than the one that granted consent", "same account that approved the consent"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			e.open("/integrations/sentinel", "#connect")
			if tc.fault != nil {
				tc.fault()
			}
			if tc.cancel {
				e.click("#connect", `form[data-emulator-form="consent"]`)
				e.click("#cancel", tc.id)
			} else {
				e.click("#connect", `form[data-emulator-form="consent"]`)
				// Consent fails at once (AADSTS650052), or the sign-in page comes.
				e.do(clickCSS("#accept"), waitAny(tc.id, `form[data-emulator-form="signin"]`))
				if js[bool](e, `!!document.querySelector('form[data-emulator-form="signin"]')`) {
					e.click("#accept", tc.id)
				}
			}
			msg := e.text(tc.id)
			for _, s := range tc.says {
				contains(t, "message", msg, s)
			}
			mustEqual(t, "state", e.text("#connection-state"), "Not connected")
			e.shot("error")
			if _, err := e.app.Store.GetConnection(t.Context(), e.workspaceID); err == nil {
				t.Fatal("a connection was stored")
			}
		})
	}
}

// TestReconnectRequired: when Microsoft stops accepting the stored refresh
// token (the emulator revokes the grants: AADSTS700082), the page shows the
// "Re-connect required" banner with the button; connecting again from it
// clears the state and keeps the monitors.
func TestReconnectRequired(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.connected()
	m := e.addMonitor("Sentinel", emulator.ContosoWorkspaceID)

	e.emu.RevokeGrants(emulator.ContosoTenantID, entra.CodeRefreshTokenExpired)
	// The cached access token would be used for up to an hour, as in
	// production; drop it so that the next call refreshes and meets the
	// revoked grant.
	e.app.Connections.Invalidate(e.workspaceID)
	if _, err := e.app.Connections.AccessToken(t.Context(), e.workspaceID, connection.SentinelPlatform); !errors.Is(err, connection.ErrReconnectRequired) {
		t.Fatalf("AccessToken after the revocation = %v, want ErrReconnectRequired", err)
	}

	e.open("/integrations/sentinel", "#reconnect-banner")
	mustEqual(t, "state", e.text("#connection-state"), "Re-connect required")
	contains(t, "banner", e.text("#reconnect-banner"), "Re-connect required")
	contains(t, "banner reason", e.text("#reconnect-reason"), "AADSTS700082")
	contains(t, "banner", e.text("#reconnect-banner"), "you don't need to disconnect first")
	e.shot("1-banner")

	e.connect("#reconnect")
	mustEqual(t, "state", e.text("#connection-state"), "Connected")
	if js[bool](e, `!!document.getElementById("reconnect-banner")`) {
		t.Fatal("the banner is still shown after reconnecting")
	}
	mustEqual(t, "monitor kept", e.text("#monitor-"+m.ID+" .monitor-name"), "Sentinel")
	e.shot("2-reconnected")
}

// TestDisconnect: Disconnect asks first, listing the monitors it will
// remove; confirming removes the connection and the monitors.
func TestDisconnect(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.connected()
	e.addMonitor("Sentinel", emulator.ContosoWorkspaceID)
	e.addMonitor("Sentinel EU", emulator.ContosoWorkspace2ID)

	e.open("/integrations/sentinel", "#disconnect")
	e.click("#disconnect", "#confirm-disconnect")
	contains(t, "count", e.text("#disconnect-count"), "These 2 monitor(s) will be removed")
	list := e.text("#disconnect-monitors")
	contains(t, "list", list, "Sentinel")
	contains(t, "list", list, "Sentinel EU")
	contains(t, "list", list, emulator.ContosoWorkspace2ID)
	mustEqual(t, "button", e.text("#confirm-disconnect"), "Disconnect and remove 2 monitor(s)")
	e.shot("1-confirm")

	e.click("#confirm-disconnect", "#done-disconnected")
	contains(t, "done", e.text("#done-disconnected"), "2 monitor(s) were removed")
	mustEqual(t, "state", e.text("#connection-state"), "Not connected")
	e.do(waitVisible("#connect"))
	e.shot("2-disconnected")

	ms, err := e.app.Integration.ListMonitors(t.Context(), e.workspaceID)
	if err != nil || len(ms) != 0 {
		t.Fatalf("monitors after disconnect: %v, %v", ms, err)
	}
	if _, err := e.app.Store.GetConnection(t.Context(), e.workspaceID); err == nil {
		t.Fatal("the connection is still stored")
	}
}

// TestDegradedShowsDefenderRemedy: when the tenant turns out to have no
// Defender MCP service principal after connecting (AADSTS650052 on the
// triage resource), the page says the connection is degraded, that
// incident polling keeps working, and gives the az command.
func TestDegradedShowsDefenderRemedy(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.connected()
	if err := e.emu.SetDefenderMCPProvisioned(emulator.ContosoTenantID, false); err != nil {
		t.Fatal(err)
	}
	if _, err := e.app.Connections.AccessToken(t.Context(), e.workspaceID, connection.DefenderMCP); !errors.Is(err, connection.ErrServiceNotEnabled) {
		t.Fatalf("Defender MCP token = %v, want ErrServiceNotEnabled", err)
	}
	e.open("/integrations/sentinel", "#degraded-"+connection.CodeDefenderMCPNotEnabled)
	mustEqual(t, "state", e.text("#connection-state"), "Degraded")
	msg := e.text("#degraded-" + connection.CodeDefenderMCPNotEnabled)
	for _, want := range []string{"Microsoft Defender MCP service", "AADSTS650052", "Incident polling and the Data Lake tools keep working",
		"az ad sp create --id 7b7b3966-1961-47b5-b080-43ca5482e21c"} {
		contains(t, "degraded notice", msg, want)
	}
	e.shot("degraded")
}
