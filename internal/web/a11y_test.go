package web_test

import (
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/clarion/sentinel/internal/emulator"
	"github.com/clarion/sentinel/internal/tools"
)

// pageChecks runs in the page and returns its accessibility problems: the
// language, one h1, a label for every form control, a name for every
// button and link, and text contrast of at least 4.5:1 (3:1 for large
// text) against the background it is drawn on (WCAG 2.2 AA).
const pageChecks = `(() => {
	const bad = [];
	if (document.documentElement.lang !== "en") bad.push("no lang");
	const h1 = document.querySelectorAll("h1").length;
	if (h1 !== 1) bad.push(h1 + " h1 elements");
	for (const el of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
		if (!el.labels || el.labels.length === 0) bad.push("unlabelled " + el.tagName + "#" + el.id);
	}
	for (const el of document.querySelectorAll("button, a[href]")) {
		if (!el.textContent.trim() && !el.getAttribute("aria-label")) bad.push("nameless " + el.tagName);
	}
	const rgb = s => (s.match(/[\d.]+/g) || []).map(Number);
	const lum = c => {
		const [r, g, b] = c.slice(0, 3).map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
		return 0.2126 * r + 0.7152 * g + 0.0722 * b;
	};
	const background = el => {
		for (; el; el = el.parentElement) {
			const c = rgb(getComputedStyle(el).backgroundColor);
			if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c;
		}
		return [255, 255, 255];
	};
	const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
	for (let n = walker.nextNode(); n; n = walker.nextNode()) {
		const el = n.parentElement;
		if (!n.textContent.trim() || !el || !el.getClientRects().length || el.closest(".visually-hidden, .skip-link")) continue;
		const st = getComputedStyle(el);
		if (st.visibility === "hidden") continue;
		const fg = lum(rgb(st.color)), bg = lum(background(el));
		const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
		const size = parseFloat(st.fontSize), bold = parseInt(st.fontWeight, 10) >= 700;
		const need = (size >= 24 || (bold && size >= 18.66)) ? 3 : 4.5;
		if (ratio < need) bad.push("contrast " + ratio.toFixed(2) + " for " + JSON.stringify(n.textContent.trim().slice(0, 30)));
	}
	return [...new Set(bad)].join("; ");
})()`

// TestPagesAreAccessibleAndResponsive: every page passes the checks above,
// fits a phone screen without sideways scrolling, and the keyboard reaches
// a visible "Skip to content" link first.
func TestPagesAreAccessibleAndResponsive(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.open("/login", "#email")
	if bad := js[string](e, pageChecks); bad != "" {
		t.Errorf("login: %s", bad)
	}
	e.connected()
	m := e.addMonitor("Sentinel with a rather long monitor name for the EU region", emulator.ContosoWorkspaceID)
	e.open("/alerts", "#alerts-body")
	e.incident(31, "Suspicious inbox forwarding rule created by a user in the finance department", "A description.", "Medium")
	e.do(waitVisible("#alerts-body tr[data-alert-id]"))
	alertID := js[string](e, `document.querySelector("#alerts-body tr[data-alert-id]").dataset.alertId`)
	if _, err := e.app.Tools.CreateSkill(t.Context(), e.workspaceID, "triage", "Tier-1 triage", []string{tools.ToolsetTriage}); err != nil {
		t.Fatal(err)
	}
	pages := []struct{ name, path, wait string }{
		{"integrations", "/integrations", "#integration-sentinel"},
		{"sentinel", "/integrations/sentinel", "#monitors-table"},
		{"add-monitor", "/integrations/sentinel/monitors/new", "#monitor-form"},
		{"edit-monitor", "/integrations/sentinel/monitors/" + m.ID + "/edit", "#monitor-form"},
		{"delete-monitor", "/integrations/sentinel/monitors/" + m.ID + "/delete", "#confirm-delete"},
		{"disconnect", "/integrations/sentinel/disconnect", "#confirm-disconnect"},
		{"alerts", "/alerts", "#alerts-body tr[data-alert-id]"},
		{"alert", "/alerts/" + alertID, "#alert-title"},
		{"skills", "/skills", "#skills-table"},
		{"skill", "/skills/triage", "#toolset-" + tools.ToolsetTriage},
	}

	for _, phone := range []bool{false, true} {
		if phone {
			e.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateTouch))
		}
		for _, p := range pages {
			e.open(p.path, p.wait)
			if bad := js[string](e, pageChecks); bad != "" {
				e.shot(p.name)
				t.Errorf("%s: %s", p.name, bad)
			}
			if phone {
				if w := js[int](e, `document.documentElement.scrollWidth`); w > 390 {
					e.shot("phone-" + p.name)
					t.Errorf("%s on a phone: %d px wide, the screen is 390", p.name, w)
				}
			}
		}
	}
	e.open("/integrations/sentinel", "#monitors-table")
	e.shot("phone-sentinel")
	e.open("/integrations/sentinel/monitors/new", "#monitor-form")
	e.shot("phone-add-monitor")
	e.do(chromedp.EmulateReset())

	// The keyboard's first stop is the skip link, drawn with a visible outline.
	e.open("/alerts", "#alerts-body")
	e.do(chromedp.KeyEvent("\t"))
	mustEqual(t, "first focus", js[string](e, `document.activeElement.textContent`), "Skip to content")
	mustEqual(t, "focus outline", js[string](e, `getComputedStyle(document.activeElement).outlineStyle`), "solid")
	e.shot("skip-link-focused")
}
