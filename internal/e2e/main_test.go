package e2e

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clarion/sentinel/internal/api"
	"github.com/clarion/sentinel/internal/demo"
	"github.com/clarion/sentinel/internal/emulator"
	"github.com/clarion/sentinel/internal/samples"
	"github.com/clarion/sentinel/internal/secrets"
	"github.com/clarion/sentinel/internal/store"
)

func TestConnectStoresCredentialEncryptedAndNeverLogsIt(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.connect()

	var v api.IntegrationView
	if code := e.do("GET", "/api/v1/integrations/sentinel", nil, &v); code != 200 {
		t.Fatalf("HTTP %d", code)
	}
	if !v.Connected || v.State != store.StateConnected || v.TenantID != emulator.ContosoTenantID || v.Account != emulator.ContosoAdminUsername {
		t.Fatalf("integration = %+v, want connected to Contoso as the admin", v)
	}

	// Decrypt the stored refresh token with the data dir's key, then look for
	// it in clear everywhere it must not be.
	c, err := e.app.Store.GetConnection(t.Context(), e.ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	key, err := secrets.LoadOrCreateKey(e.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	box, _ := secrets.NewBox(key)
	rt, err := box.Open(c.RefreshTokenEnc, []byte(e.ws.ID))
	if err != nil {
		t.Fatalf("stored refresh token does not decrypt with the workspace as aad: %v", err)
	}
	if len(rt) < 20 {
		t.Fatalf("refresh token %d bytes: implausible", len(rt))
	}
	// Poll once so that the token is used (refresh, rotation) and logged paths run.
	m := e.addMonitor(map[string]any{"name": "Sentinel"})
	e.mustPoll(m.ID)
	c2, _ := e.app.Store.GetConnection(t.Context(), e.ws.ID)
	rt2, err := box.Open(c2.RefreshTokenEnc, []byte(e.ws.ID))
	if err != nil {
		t.Fatal(err)
	}
	files := e.dbFiles()
	if len(files) == 0 {
		t.Fatal("no database files found")
	}
	for _, tok := range [][]byte{rt, rt2} {
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b, tok) {
				t.Fatalf("refresh token found in clear in %s", f)
			}
		}
		if bytes.Contains(e.logs.Bytes(), tok) {
			t.Fatal("refresh token found in the logs")
		}
	}
	if bytes.Contains(e.logs.Bytes(), []byte(emulator.DefaultClientSecret)) {
		t.Fatal("client secret found in the logs")
	}
}

// TestConnectWithoutRefreshTokenStoresNothing: Microsoft answers the sign-in
// without a refresh token (offline_access not granted). Declined consent,
// another tenant and the missing Defender MCP service are case P12.
func TestConnectWithoutRefreshTokenStoresNothing(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.emu.SetFault(emulator.Fault{Kind: emulator.FaultNoRefreshToken, Count: 1})
	status, body, err := demo.ConnectWith(t.Context(), e.url, e.token, emulator.BrowseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if status == http.StatusOK || !strings.Contains(body, `data-code="no_refresh_token"`) || !strings.Contains(body, "offline_access") {
		t.Fatalf("final page HTTP %d, want no_refresh_token naming offline_access:\n%s", status, body)
	}
	if _, err := e.app.Store.GetConnection(t.Context(), e.ws.ID); err == nil {
		t.Fatal("a connection was stored")
	}
	var v api.IntegrationView
	e.do("GET", "/api/v1/integrations/sentinel", nil, &v)
	if v.Connected || v.State != "not_connected" {
		t.Fatalf("integration = %+v, want not connected", v)
	}
}

// loadShifted reads a real sample file and replays its incidents as created
// after the monitor, order kept, one second apart.
func loadShifted(t *testing.T, e *env, name string, start time.Time) []emulator.Row {
	t.Helper()
	rows, err := emulator.LoadIncidents(samples.Path(t, name))
	if err != nil {
		t.Fatal(err)
	}
	shifted := demo.Shift(rows, start, time.Second)
	if _, err := e.emu.AddIncidents(emulator.ContosoTenantID, emulator.ContosoWorkspaceID, shifted, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	return shifted
}

func TestMonitorIngestsRealSampleIncidents(t *testing.T) {
	t.Parallel()
	// A look-back longer than the data, so that every later poll re-reads all of it.
	e := setup(t, envOpts{pageSize: 20, lookback: 3 * time.Hour})
	e.connect()
	m := e.addMonitor(map[string]any{"name": "Sentinel"})
	e.clock.Advance(time.Second)
	arm := loadShifted(t, e, "arm_incidents_list_page_nextlink_SOC_agent_ss.json", e.clock.Now())
	la := loadShifted(t, e, "securityincident_rows_stix-shifter.json", e.clock.Now().Add(time.Hour))
	e.clock.Advance(2 * time.Hour)
	// 52 incidents, pages of 20: one poll reads three pages.
	e.mustPoll(m.ID)

	alerts := e.alerts()
	if len(alerts) != len(arm)+len(la) {
		t.Fatalf("%d alerts, want %d", len(alerts), len(arm)+len(la))
	}
	byID := map[string]api.AlertView{}
	for _, a := range alerts {
		byID[a.IncidentID] = a
	}
	for _, r := range append(arm, la...) {
		name := r["IncidentName"].(string)
		a, ok := byID[name]
		if !ok {
			t.Fatalf("no alert for incident %s (%v)", name, r["Title"])
		}
		if a.Title != r["Title"] {
			t.Errorf("alert title %q, want %q", a.Title, r["Title"])
		}
		want := map[string]string{"High": "high", "Medium": "medium", "Low": "low", "Informational": "low"}[r["Severity"].(string)]
		if a.Severity != want || a.SourceSeverity != r["Severity"] {
			t.Errorf("%s: severity %q (source %q), want %q from %q", name, a.Severity, a.SourceSeverity, want, r["Severity"])
		}
		if !strings.Contains(string(a.Payload), name) || !strings.Contains(string(a.Payload), `"SecurityIncident"`) && !strings.Contains(string(a.Payload), `"IncidentNumber"`) {
			t.Errorf("%s: payload does not carry the incident row", name)
		}
		if a.DeepLink != "" && !strings.HasPrefix(a.DeepLink, "https://security.microsoft.com/") && !strings.HasPrefix(a.DeepLink, "https://portal.azure.com/") {
			t.Errorf("%s: deep link %q is not a Microsoft portal link", name, a.DeepLink)
		}
	}
	// The real ARM page: Defender XDR incidents link to the Defender portal
	// (providerIncidentUrl), Sentinel-native ones to their Azure portal URL.
	defender := 0
	for _, r := range arm {
		a := byID[r["IncidentName"].(string)]
		want := "https://portal.azure.com/"
		if ad, ok := r["AdditionalData"].(map[string]any); ok && ad["providerIncidentUrl"] != nil {
			want = "https://security.microsoft.com/"
			defender++
		}
		if !strings.HasPrefix(a.DeepLink, want) {
			t.Errorf("%s: deep link %q, want one starting %q", a.IncidentID, a.DeepLink, want)
		}
	}
	if defender == 0 {
		t.Fatal("no Defender incident in the ARM sample: the deep-link check proved nothing")
	}
	h := e.monitor(m.ID).Health
	if h.Status != store.HealthHealthy || h.Counts.Returned != 52 || h.Counts.Ingested != 52 {
		t.Fatalf("health %+v, want healthy with 52 returned and ingested", h)
	}

	// Polls again and again, overlapping the look-back: never a second alert.
	for range 3 {
		e.mustPoll(m.ID)
	}
	for id, n := range e.alertCounts() {
		if n != 1 {
			t.Fatalf("incident %s has %d alerts", id, n)
		}
	}
	if h := e.monitor(m.ID).Health; h.Counts.AlreadyKnown != 52 || h.Counts.Ingested != 0 {
		t.Fatalf("repeat poll health %+v, want 52 already known, 0 ingested", h.Counts)
	}
}

func TestMonitorFiltersAndSeverityMapping(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.connect()
	high := e.addMonitor(map[string]any{"name": "high only", "severities": []string{"high", "critical"}})
	phish := e.addMonitor(map[string]any{"name": "phishing", "search": "  PHISHING "})
	start := e.clock.Now().Add(time.Second)
	inc := []struct {
		sev, title, desc string
	}{
		{"High", "Phishing link clicked", ""},
		{"Medium", "Suspicious sign-in", "possible phishing follow-up"},
		{"Low", "Mass download", ""},
		{"Informational", "Test alert", ""},
		{"", "No severity", ""},
		{"unknownFutureValue", "Future severity", ""},
	}
	for i, c := range inc {
		fields := map[string]any{"Title": c.title, "Description": c.desc, "Severity": c.sev}
		e.incident(guid(i+1), start.Add(time.Duration(i)*time.Second), fields)
	}
	e.clock.Advance(time.Minute)
	e.mustPoll(high.ID)
	e.mustPoll(phish.ID)
	got := map[string]string{}
	for _, a := range e.alerts() {
		got[a.Title] = a.Severity + "/" + a.MonitorName
	}
	want := map[string]string{
		"Phishing link clicked": "high/high only",
		"Suspicious sign-in":    "medium/phishing",
	}
	if len(got) != len(want) {
		t.Fatalf("alerts %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("alert %q = %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	hc := e.monitor(high.ID).Health.Counts
	if hc.Returned != 6 || hc.FilteredSeverity != 5 || hc.Ingested != 1 {
		t.Fatalf("high-only counts %+v", hc)
	}
	pc := e.monitor(phish.ID).Health.Counts
	// The phishing incident itself was already alerted by the other monitor:
	// one alert per incident per Clarion workspace.
	if pc.Returned != 6 || pc.FilteredSearch != 4 || pc.Ingested+pc.AlreadyKnown != 2 {
		t.Fatalf("phishing counts %+v", pc)
	}
}

func TestDisconnectRemovesMonitorsKeepsAlerts(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.connect()
	m1 := e.addMonitor(map[string]any{"name": "one"})
	m2 := e.addMonitor(map[string]any{"name": "two", "workspace_id": emulator.ContosoWorkspace2ID})
	e.incident(guid(1), e.clock.Now().Add(time.Second), nil)
	e.clock.Advance(time.Minute)
	e.mustPoll(m1.ID)
	e.mustPoll(m2.ID)
	if n := len(e.alerts()); n != 1 {
		t.Fatalf("%d alerts before disconnect, want 1", n)
	}
	var out struct {
		Removed []string `json:"removed_monitors"`
	}
	if code := e.do("DELETE", "/api/v1/integrations/sentinel", nil, &out); code != 200 {
		t.Fatalf("disconnect HTTP %d", code)
	}
	slices.Sort(out.Removed)
	want := []string{m1.ID, m2.ID}
	slices.Sort(want)
	if !slices.Equal(out.Removed, want) {
		t.Fatalf("removed %v, want %v", out.Removed, want)
	}
	calls := e.emu.Stats().Tenant(emulator.ContosoTenantID).Total.Count
	var ms struct {
		Monitors []api.MonitorView `json:"monitors"`
	}
	e.do("GET", "/api/v1/monitors", nil, &ms)
	if len(ms.Monitors) != 0 {
		t.Fatalf("%d monitors after disconnect", len(ms.Monitors))
	}
	if n := len(e.alerts()); n != 1 {
		t.Fatalf("%d alerts after disconnect, want the 1 ingested before", n)
	}
	if _, ok, _ := e.app.Store.ClaimPoll(t.Context(), m1.ID, "replica-1", e.clock.Now().Add(time.Hour), e.clock.Now().Add(2*time.Hour)); ok {
		t.Fatal("a removed monitor could still be claimed for polling")
	}
	if got := e.emu.Stats().Tenant(emulator.ContosoTenantID).Total.Count; got != calls {
		t.Fatalf("%d calls to Microsoft after disconnect", got-calls)
	}
	var v api.IntegrationView
	e.do("GET", "/api/v1/integrations/sentinel", nil, &v)
	if v.Connected {
		t.Fatal("still connected after disconnect")
	}
}

// TestConnectLinkFromAnotherBrowserIsRefused: an attacker starts a connect
// flow in their own Clarion workspace and sends the consent link to a
// victim admin. The victim's browser never started that flow, so the
// callback refuses it and nothing is stored in the attacker's workspace.
func TestConnectLinkFromAnotherBrowserIsRefused(t *testing.T) {
	t.Parallel()
	e := setup(t)
	// The attacker's browser: stop at the redirect to Microsoft.
	req, _ := http.NewRequestWithContext(t.Context(), "GET", e.url+"/integrations/sentinel/connect", nil)
	req.Header.Set("Authorization", "Bearer "+e.token)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	consentURL := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || consentURL == "" {
		t.Fatalf("connect answered HTTP %d", resp.StatusCode)
	}
	// The victim's browser (its own cookies, none from Clarion) follows it.
	victim := emulator.NewBrowser(nil)
	final, err := victim.ClickThrough(t.Context(), consentURL, emulator.BrowseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(final.Body)
	final.Body.Close()
	if final.StatusCode == http.StatusOK || !strings.Contains(string(body), `data-code="invalid_state"`) {
		t.Fatalf("callback from a browser that did not start the flow: HTTP %d\n%s", final.StatusCode, body)
	}
	if _, err := e.app.Store.GetConnection(t.Context(), e.ws.ID); err == nil {
		t.Fatal("the victim's credential was stored in the attacker's workspace")
	}
}
