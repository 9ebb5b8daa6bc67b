package web_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/clarion/sentinel/internal/emulator"
)

// incident adds a new Sentinel incident to the emulator's Contoso
// workspace, visible at once, and returns its IncidentName.
func (e *env) incident(n int, title, description, severity string) string {
	e.t.Helper()
	row := emulator.DemoIncident(emulator.ContosoTenantID, n, time.Now().UTC())
	row["Title"], row["Description"], row["Severity"] = title, description, severity
	e.emu.AddIncident(emulator.ContosoTenantID, emulator.ContosoWorkspaceID, row, time.Now())
	return row["IncidentName"].(string)
}

// TestAlertArrivesWithoutReload: an incident added in Sentinel (the
// emulator) appears at the top of the open alerts page without a reload,
// with its severity, source, monitor and time; its detail shows title,
// description, severity, the deep link (opening in a new tab with
// rel=noopener, never followed here) and the payload in a collapsible viewer.
func TestAlertArrivesWithoutReload(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.connected()
	e.addMonitor("Sentinel", emulator.ContosoWorkspaceID)

	e.open("/alerts", "#no-alerts")
	e.shot("1-empty")
	// A reload would lose this.
	e.do(chromedp.Evaluate[chromedp.Void](`window.__sameDocument = "yes"`))
	e.incident(7, "Suspicious sign-in from an unfamiliar location", "Impossible travel for adele@contoso.com.\nSecond line.", "High")

	e.do(waitVisible("#alerts-body tr[data-alert-id]"))
	mustEqual(t, "same document", js[string](e, `window.__sameDocument`), "yes")
	mustEqual(t, "announced", e.text("#live-status"), "1 new alert arrived.")
	r := e.text("#alerts-body tr[data-alert-id]")
	for _, want := range []string{"Suspicious sign-in from an unfamiliar location", "High", "Microsoft Sentinel", "Sentinel", " UTC"} {
		contains(t, "row", r, want)
	}
	if js[bool](e, `!!document.getElementById("no-alerts")`) {
		t.Fatal(`"No alerts yet" still shown`)
	}
	e.shot("2-arrived")

	// A second one goes on top.
	e.incident(8, "Mass download by a single user", "", "Medium")
	e.do(waitVisible("#alerts-body tr[data-alert-id]:nth-child(2)"))
	contains(t, "first row", e.text("#alerts-body tr:first-child"), "Mass download by a single user")
	mustEqual(t, "same document", js[string](e, `window.__sameDocument`), "yes")

	e.click(`#alerts-body tr:nth-child(2) a.alert-title`, "#alert-title")
	mustEqual(t, "title", e.text("#alert-title"), "Suspicious sign-in from an unfamiliar location")
	mustEqual(t, "description", js[string](e, `document.getElementById("alert-description").textContent`), "Impossible travel for adele@contoso.com.\nSecond line.")
	contains(t, "severity", e.text(".page-head .sev"), "High")
	mustEqual(t, "monitor", e.text("#alert-monitor"), "Sentinel")

	link := run(e, chromedp.Attributes(chromedp.CSS("#deep-link")))
	u, err := url.Parse(link["href"])
	if err != nil || u.Scheme != "https" || (u.Host != "portal.azure.com" && u.Host != "security.microsoft.com") {
		t.Fatalf("deep link href = %q, want an https link to a Microsoft portal", link["href"])
	}
	mustEqual(t, "deep link target", link["target"], "_blank")
	if rel := strings.Fields(link["rel"]); !contains1(rel, "noopener") {
		t.Fatalf("deep link rel = %q, want noopener", link["rel"])
	}

	// The payload viewer: nested <details>, the first level open.
	mustEqual(t, "payload root open", js[bool](e, `document.querySelector("#payload-tree > li > details").open`), true)
	nested := `#payload-tree > li > details > ul > li > details`
	if n := js[int](e, `document.querySelectorAll("`+nested+`").length`); n == 0 {
		t.Fatal("no nested fields in the payload viewer")
	}
	mustEqual(t, "nested closed", js[bool](e, `document.querySelector("`+nested+`").open`), false)
	e.tap(nested+" > summary", nested+"[open] li")
	contains(t, "payload", e.text("#payload-tree"), `"Suspicious sign-in from an unfamiliar location"`)
	e.shot("3-detail")
}

func contains1(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestIncidentHTMLRendersAsText: an incident whose title and description
// carry HTML and script, and a monitor whose name does, are shown as text
// on every page that shows them — the live row, the list, the detail and
// its payload viewer, the monitors table, the forms — and no injected
// element or script exists in the page.
func TestIncidentHTMLRendersAsText(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.connected()
	m := e.addMonitor(hostileMonitor, emulator.ContosoWorkspaceID)

	e.open("/integrations/sentinel", "#monitors-table")
	mustEqual(t, "monitor name", e.text("#monitor-"+m.ID+" .monitor-name"), hostileMonitor)
	e.noInjection("monitors table")
	e.shot("1-monitors")

	e.open("/alerts", "#no-alerts")
	e.incident(11, hostileTitle, hostileDescription, "High")
	e.do(waitVisible("#alerts-body tr[data-alert-id]"))
	mustEqual(t, "live row title", e.text("#alerts-body a.alert-title"), hostileTitle)
	e.noInjection("live row")
	e.shot("2-live")

	e.open("/alerts", "#alerts-body tr[data-alert-id]")
	mustEqual(t, "list title", e.text("#alerts-body a.alert-title"), hostileTitle)
	contains(t, "monitor filter", e.text("#monitor_id"), hostileMonitor)
	e.noInjection("list")

	e.click("#alerts-body a.alert-title", "#alert-title")
	mustEqual(t, "detail title", e.text("#alert-title"), hostileTitle)
	mustEqual(t, "detail description", js[string](e, `document.getElementById("alert-description").textContent`), hostileDescription)
	mustEqual(t, "detail monitor", e.text("#alert-monitor"), hostileMonitor)
	e.do(chromedp.Evaluate[chromedp.Void](`document.querySelectorAll("details").forEach(d => d.open = true)`))
	contains(t, "payload viewer", e.text("#payload-tree"), hostileTitle)
	contains(t, "raw payload", js[string](e, `document.getElementById("payload-raw").textContent`), `window.__xss='script'`)
	e.noInjection("detail")
	mustEqual(t, "document title", js[string](e, `document.title`), hostileTitle+" — Clarion")
	e.shot("3-detail")

	e.open("/integrations/sentinel/monitors/"+m.ID+"/edit", "#monitor-form")
	mustEqual(t, "name field", run(e, chromedp.Value(chromedp.CSS("#name"))), hostileMonitor)
	e.noInjection("edit form")
	e.open("/integrations/sentinel/disconnect", "#disconnect-monitors")
	contains(t, "disconnect list", e.text("#disconnect-monitors"), hostileMonitor)
	e.noInjection("disconnect confirmation")
}

// TestAlertFilters: the list filters by severity and by monitor; a bad
// filter is refused next to its field.
func TestAlertFilters(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.connected()
	e.addMonitor("Sentinel", emulator.ContosoWorkspaceID)

	e.open("/alerts", "#no-alerts")
	e.incident(21, "High one", "", "High")
	e.incident(22, "Low one", "", "Informational")
	e.do(waitVisible("#alerts-body tr[data-alert-id]:nth-child(2)"))

	e.do(chromedp.SetValue(chromedp.CSS("#severity"), "low"))
	e.click("#apply-filters", "#alert-filters")
	rows := js[string](e, `[...document.querySelectorAll("#alerts-body a.alert-title")].map(a => a.textContent).join("|")`)
	mustEqual(t, "low alerts", rows, "Low one")
	contains(t, "severity", e.text("#alerts-body tr"), "Low")
	mustEqual(t, "filter kept", run(e, chromedp.Value(chromedp.CSS("#severity"))), "low")
	e.shot("1-low")

	e.open("/alerts?severity=urgent", "#severity-error")
	contains(t, "error", e.text("#severity-error"), "Unknown severity")
	mustEqual(t, "aria-invalid", js[string](e, `document.getElementById("severity").getAttribute("aria-invalid")`), "true")
	e.shot("2-bad-filter")
}
