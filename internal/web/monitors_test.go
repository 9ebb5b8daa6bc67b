package web_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/clarion/sentinel/internal/emulator"
	"github.com/clarion/sentinel/internal/store"
)

// row is the monitors table's row of the monitor with this name.
func row(name string) string { return `tr[data-monitor-name="` + name + `"]` }

// checked reports which severity boxes are checked, in order.
func checked(e *env) string {
	return js[string](e, `[...document.querySelectorAll('input[name="severities"]')].map(b => b.value + "=" + b.checked).join(" ")`)
}

func (e *env) monitorByName(name string) store.Monitor {
	e.t.Helper()
	ms, err := e.app.Integration.ListMonitors(e.t.Context(), e.workspaceID)
	if err != nil {
		e.t.Fatal(err)
	}
	i := slices.IndexFunc(ms, func(m store.Monitor) bool { return m.Name == name })
	if i < 0 {
		e.t.Fatalf("no monitor %q among %d", name, len(ms))
	}
	return ms[i]
}

// TestAddMonitorOnEachTab: a monitor is added on the SIEM workspace tab
// (Workspace ID typed, with the hint where to find it) and another on the
// Data lake tab (picked from the workspaces the tenant can see); the table
// shows each with its filters.
func TestAddMonitorOnEachTab(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.connected()

	e.click("#add-monitor", "#monitor-form")
	// The SIEM tab is open by default, every severity is checked.
	e.do(waitVisible("#workspace_id"))
	mustEqual(t, "data lake panel hidden", js[bool](e, `document.getElementById("panel-datalake").offsetParent === null`), true)
	mustEqual(t, "severities", checked(e), "critical=true high=true medium=true low=true")
	contains(t, "hint", e.text("#workspace_id-hint"), "Workspace ID on that workspace's Log Analytics workspace overview")
	contains(t, "severity hint", e.text("#severities-hint"), "Leaving every box unchecked turns the filter off")
	e.fill("#name", "Sentinel EU")
	e.fill("#workspace_id", strings.ToUpper(emulator.ContosoWorkspace2ID))
	e.do(clickCSS("#severity-low"))
	e.fill("#search", "phishing")
	e.shot("1-siem-tab")
	e.click("#save-monitor", "#done-monitor_created")
	r := e.text(row("Sentinel EU"))
	contains(t, "row", r, "SIEM workspace")
	contains(t, "row", r, emulator.ContosoWorkspace2ID)
	contains(t, "row", r, "Only Critical, High, Medium")
	contains(t, "row", r, "Search: “phishing”")

	e.click("#add-monitor", "#monitor-form")
	e.tap("#tab-datalake", "#datalake_workspace")
	mustEqual(t, "SIEM panel hidden", js[bool](e, `document.getElementById("panel-siem").offsetParent === null`), true)
	opts := js[string](e, `[...document.querySelectorAll("#datalake_workspace option")].map(o => o.textContent).join("|")`)
	contains(t, "options", opts, emulator.ContosoWorkspaceName+" ("+emulator.ContosoWorkspaceID+")")
	contains(t, "options", opts, emulator.ContosoWorkspace2Name+" ("+emulator.ContosoWorkspace2ID+")")
	e.fill("#name", "Contoso data lake")
	e.do(chromedp.SetValue(chromedp.CSS("#datalake_workspace"), emulator.ContosoWorkspaceID))
	// Every box unchecked: no filter.
	for _, s := range []string{"critical", "high", "medium", "low"} {
		e.do(clickCSS("#severity-" + s))
	}
	mustEqual(t, "severities", checked(e), "critical=false high=false medium=false low=false")
	e.shot("2-data-lake-tab")
	e.click("#save-monitor", "#done-monitor_created")
	r = e.text(row("Contoso data lake"))
	contains(t, "row", r, "Data lake: "+emulator.ContosoWorkspaceName)
	contains(t, "row", r, emulator.ContosoWorkspaceID)
	contains(t, "row", r, "All severities (no filter)")
	e.shot("3-monitors")

	siem, lake := e.monitorByName("Sentinel EU"), e.monitorByName("Contoso data lake")
	if siem.SourceKind != store.SourceSIEM || siem.SentinelWorkspaceID != emulator.ContosoWorkspace2ID ||
		!slices.Equal(siem.Severities, []string{"critical", "high", "medium"}) || siem.Search != "phishing" || !siem.Enabled {
		t.Fatalf("SIEM monitor stored as %+v", siem)
	}
	if lake.SourceKind != store.SourceDataLake || lake.SentinelWorkspaceID != emulator.ContosoWorkspaceID ||
		lake.SentinelWorkspaceName != emulator.ContosoWorkspaceName || lake.Severities != nil {
		t.Fatalf("data lake monitor stored as %+v", lake)
	}
}

// TestEditAndDeleteMonitor: the edit form opens with the monitor's values,
// its sync health and its diagnosis; saving changes it; delete asks first.
func TestEditAndDeleteMonitor(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.connected()
	m := e.addMonitor("Sentinel", emulator.ContosoWorkspaceID)

	e.open("/integrations/sentinel", row("Sentinel"))
	e.click(row("Sentinel")+" .edit-monitor", "#monitor-form")
	mustEqual(t, "name", run(e, chromedp.Value(chromedp.CSS("#name"))), "Sentinel")
	mustEqual(t, "workspace id", run(e, chromedp.Value(chromedp.CSS("#workspace_id"))), emulator.ContosoWorkspaceID)
	mustEqual(t, "severities", checked(e), "critical=true high=true medium=true low=true")
	e.do(waitVisible("#health-status"), waitVisible("#diagnosis-summary"))
	if js[int](e, `document.querySelectorAll("#diagnosis .finding").length`) == 0 || e.text("#diagnosis-summary") == "" {
		t.Fatal("the edit page shows no diagnosis")
	}
	e.fill("#name", "Sentinel (high only)")
	for _, s := range []string{"critical", "medium", "low"} {
		e.do(clickCSS("#severity-" + s))
	}
	e.shot("1-edit")
	e.click("#save-monitor", "#done-monitor_updated")
	contains(t, "row", e.text(row("Sentinel (high only)")), "Only High")
	got := e.monitorByName("Sentinel (high only)")
	if got.ID != m.ID || !slices.Equal(got.Severities, []string{"high"}) {
		t.Fatalf("after edit: %+v", got)
	}

	e.click(row("Sentinel (high only)")+" .delete-monitor", "#confirm-delete")
	mustEqual(t, "name on the confirmation", e.text("#delete-name"), "Sentinel (high only)")
	e.shot("2-delete")
	e.click("#confirm-delete", "#done-monitor_deleted")
	e.do(waitVisible("#no-monitors"))
	if _, err := e.app.Integration.GetMonitor(t.Context(), e.workspaceID, m.ID); err == nil {
		t.Fatal("the monitor still exists")
	}
}

// TestMonitorFormRejectsBadInputAndKeepsIt: every problem is said next to
// its field (and in a summary at the top), and the form comes back with
// what was typed, on the tab that was open.
func TestMonitorFormRejectsBadInputAndKeepsIt(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.connected()
	e.addMonitor("Existing", emulator.ContosoWorkspaceID)

	e.click("#add-monitor", "#monitor-form")
	e.fill("#name", "   ")
	e.fill("#workspace_id", "not-a-guid")
	e.do(clickCSS("#severity-critical"), clickCSS("#severity-low"))
	e.fill("#search", "  phish ")
	e.click("#save-monitor", "#error-summary")
	contains(t, "name error", e.text("#name-error"), "A name is required.")
	contains(t, "workspace id error", e.text("#workspace_id-error"), "must be a GUID")
	contains(t, "summary", e.text("#error-summary"), "A name is required.")
	mustEqual(t, "workspace id kept", run(e, chromedp.Value(chromedp.CSS("#workspace_id"))), "not-a-guid")
	mustEqual(t, "name kept", run(e, chromedp.Value(chromedp.CSS("#name"))), "   ")
	mustEqual(t, "search kept", run(e, chromedp.Value(chromedp.CSS("#search"))), "  phish ")
	mustEqual(t, "severities kept", checked(e), "critical=false high=true medium=true low=false")
	mustEqual(t, "aria-invalid", js[string](e, `document.getElementById("workspace_id").getAttribute("aria-invalid")`), "true")
	mustEqual(t, "described by its error", js[string](e, `document.getElementById("workspace_id").getAttribute("aria-describedby")`), "workspace_id-hint workspace_id-error")
	e.shot("1-name-and-guid")

	// A name in use.
	e.fill("#name", "Existing")
	e.fill("#workspace_id", emulator.ContosoWorkspace2ID)
	e.click("#save-monitor", "#name-error")
	contains(t, "name error", e.text("#name-error"), "A monitor with this name already exists")
	mustEqual(t, "workspace id kept", run(e, chromedp.Value(chromedp.CSS("#workspace_id"))), emulator.ContosoWorkspace2ID)

	// A search longer than allowed.
	e.fill("#name", "Phishing")
	e.fill("#search", strings.Repeat("x", 257))
	e.click("#save-monitor", "#search-error")
	contains(t, "search error", e.text("#search-error"), "longer than 256 characters")
	mustEqual(t, "name kept", run(e, chromedp.Value(chromedp.CSS("#name"))), "Phishing")

	// The Data lake tab without a pick stays open, with the message at the dropdown.
	e.fill("#search", "")
	e.tap("#tab-datalake", "#datalake_workspace")
	e.click("#save-monitor", "#datalake_workspace-error")
	contains(t, "pick error", e.text("#datalake_workspace-error"), "Pick a Sentinel workspace from the list.")
	mustEqual(t, "data lake tab still open", js[bool](e, `document.getElementById("source-datalake").checked`), true)
	mustEqual(t, "name kept", run(e, chromedp.Value(chromedp.CSS("#name"))), "Phishing")
	e.shot("2-data-lake-pick")

	ms, err := e.app.Integration.ListMonitors(t.Context(), e.workspaceID)
	if err != nil || len(ms) != 1 {
		t.Fatalf("monitors = %d, %v; want only the existing one", len(ms), err)
	}
}

// TestAddMonitorWhenListingFails: with the tenant not onboarded to the data
// lake, the Data lake tab says "Couldn't list workspaces" with the remedy
// and points to the SIEM workspace tab, where the monitor is added.
func TestAddMonitorWhenListingFails(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.connected()
	if err := e.emu.SetDataLakeOnboarded(emulator.ContosoTenantID, false); err != nil {
		t.Fatal(err)
	}

	e.click("#add-monitor", "#monitor-form")
	e.fill("#name", "Sentinel")
	e.tap("#tab-datalake", "#lake-error")
	msg := e.text("#lake-error")
	contains(t, "message", msg, "Couldn't list workspaces")
	contains(t, "message", msg, "not onboarded to the Microsoft Sentinel data lake")
	contains(t, "message", msg, "Use the SIEM workspace tab")
	e.shot("1-couldnt-list")

	// Saving on the Data lake tab says it again, next to the picker.
	e.click("#save-monitor", "#error-summary")
	contains(t, "summary", e.text("#error-summary"), "Couldn't list workspaces")
	e.do(waitVisible("#lake-error"))

	e.tap("#use-siem-tab", "#workspace_id")
	mustEqual(t, "name kept", run(e, chromedp.Value(chromedp.CSS("#name"))), "Sentinel")
	e.fill("#workspace_id", emulator.ContosoWorkspaceID)
	e.shot("2-siem-tab")
	e.click("#save-monitor", "#done-monitor_created")
	contains(t, "row", e.text(row("Sentinel")), emulator.ContosoWorkspaceID)
	e.shot("3-added")
}
