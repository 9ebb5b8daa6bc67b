package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/clarion/sentinel/internal/emulator"
	"github.com/clarion/sentinel/internal/integration"
)

func codes(d integration.Diagnosis) string {
	var out []string
	for _, f := range d.Findings {
		out = append(out, f.Code)
	}
	return strings.Join(out, ",")
}

func TestDiagnosticsExplainWhyNothingArrives(t *testing.T) {
	t.Parallel()
	e := setup(t)
	// Incidents older than any monitor: forward-only explains the silence.
	e.incident(guid(1), e.clock.Now().Add(-time.Hour), nil)
	e.connect()
	fwd := e.addMonitor(map[string]any{"name": "forward only"})
	empty := e.addMonitor(map[string]any{"name": "empty workspace", "workspace_id": emulator.ContosoWorkspace2ID})
	filtered := e.addMonitor(map[string]any{"name": "filtered", "severities": []string{"critical"}, "search": "ransomware"})
	e.incident(guid(2), e.clock.Now().Add(time.Second), map[string]any{"Severity": "Low", "Title": "phishing"})
	e.incident(guid(3), e.clock.Now().Add(2*time.Second), map[string]any{"Severity": "Critical", "Title": "phishing"})
	e.clock.Advance(time.Minute)
	// The forward-only monitor is moved to after the new incidents too.
	for _, id := range []string{empty.ID, filtered.ID} {
		e.mustPoll(id)
	}
	cases := []struct {
		id   string
		want []string
	}{
		{fwd.ID, []string{"not_polled_yet", "incidents_present"}},
		{empty.ID, []string{"last_poll_ok", "workspace_empty"}},
		{filtered.ID, []string{"filtered_by_severity", "filtered_by_search"}},
	}
	for _, c := range cases {
		var d integration.Diagnosis
		if code := e.do("GET", "/api/v1/monitors/"+c.id+"/diagnostics", nil, &d); code != 200 {
			t.Fatalf("HTTP %d", code)
		}
		got := codes(d)
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("monitor %s: findings %s, want %s (summary %q)", c.id, got, w, d.Summary)
			}
		}
		if d.Summary == "" {
			t.Errorf("monitor %s: empty summary", c.id)
		}
	}

	// A monitor created after every incident: forward-only.
	late := e.addMonitor(map[string]any{"name": "late"})
	e.clock.Advance(time.Minute)
	e.mustPoll(late.ID)
	var d integration.Diagnosis
	e.do("GET", "/api/v1/monitors/"+late.ID+"/diagnostics", nil, &d)
	if !strings.Contains(codes(d), "forward_only") {
		t.Fatalf("late monitor findings %s, want forward_only", codes(d))
	}

	// Re-connect required is the first thing said.
	e.emu.RevokeGrants(emulator.ContosoTenantID, 700082)
	e.clock.Advance(2 * time.Hour)
	_ = e.poll(late.ID)
	e.do("GET", "/api/v1/monitors/"+late.ID+"/diagnostics", nil, &d)
	if !strings.HasPrefix(codes(d), "reconnect_required") || !strings.Contains(d.Summary, "Re-connect required") {
		t.Fatalf("findings %s summary %q, want re-connect required first", codes(d), d.Summary)
	}
}
