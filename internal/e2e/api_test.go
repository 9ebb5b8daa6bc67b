package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/clarion/sentinel/internal/api"
	"github.com/clarion/sentinel/internal/emulator"
)

type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field"`
	} `json:"error"`
}

func TestMonitorBadInputIsRejectedAndChangesNothing(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.connect()
	good := e.addMonitor(map[string]any{"name": "keep me", "severities": []string{"high"}, "search": "x"})
	cases := []struct {
		name   string
		method string
		path   string
		body   any
		status int
		field  string
	}{
		{"bad guid", "POST", "/api/v1/monitors", map[string]any{"name": "a", "workspace_id": "not-a-guid"}, 400, "workspace_id"},
		{"empty name", "POST", "/api/v1/monitors", map[string]any{"name": "  ", "workspace_id": emulator.ContosoWorkspaceID}, 400, "name"},
		{"unknown severity", "POST", "/api/v1/monitors", map[string]any{"name": "a", "workspace_id": emulator.ContosoWorkspaceID, "severities": []string{"urgent"}}, 400, "severities"},
		{"oversize name", "POST", "/api/v1/monitors", map[string]any{"name": strings.Repeat("n", 101), "workspace_id": emulator.ContosoWorkspaceID}, 400, "name"},
		{"oversize search", "POST", "/api/v1/monitors", map[string]any{"name": "a", "workspace_id": emulator.ContosoWorkspaceID, "search": strings.Repeat("s", 257)}, 400, "search"},
		{"unknown source", "POST", "/api/v1/monitors", map[string]any{"name": "a", "workspace_id": emulator.ContosoWorkspaceID, "source": "ftp"}, 400, "source"},
		{"duplicate name", "POST", "/api/v1/monitors", map[string]any{"name": "keep me", "workspace_id": emulator.ContosoWorkspaceID}, 400, "name"},
		{"wrong type", "POST", "/api/v1/monitors", map[string]any{"name": 5}, 400, "name"},
		{"unknown field", "POST", "/api/v1/monitors", map[string]any{"name": "a", "colour": "red"}, 400, "colour"},
		{"oversize body", "POST", "/api/v1/monitors", map[string]any{"name": strings.Repeat("x", 70<<10)}, 413, ""},
		{"patch bad guid", "PATCH", "/api/v1/monitors/" + good.ID, map[string]any{"workspace_id": "123", "name": "renamed"}, 400, "workspace_id"},
		{"patch bad severity", "PATCH", "/api/v1/monitors/" + good.ID, map[string]any{"severities": []string{"high", "bogus"}}, 400, "severities"},
	}
	for _, c := range cases {
		var out apiError
		code := e.do(c.method, c.path, c.body, &out)
		if code != c.status || out.Error.Field != c.field || out.Error.Message == "" {
			t.Errorf("%s: HTTP %d field %q message %q, want HTTP %d field %q", c.name, code, out.Error.Field, out.Error.Message, c.status, c.field)
		}
	}
	var ms struct {
		Monitors []api.MonitorView `json:"monitors"`
	}
	e.do("GET", "/api/v1/monitors", nil, &ms)
	if len(ms.Monitors) != 1 {
		t.Fatalf("%d monitors after bad input, want only the first", len(ms.Monitors))
	}
	m := ms.Monitors[0]
	if m.Name != "keep me" || m.WorkspaceID != emulator.ContosoWorkspaceID || len(m.Severities) != 1 || m.Search != "x" {
		t.Fatalf("monitor changed by rejected input: %+v", m)
	}
}

func TestMonitorWithoutConnectionIsRefused(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var out apiError
	code := e.do("POST", "/api/v1/monitors", map[string]any{"name": "a", "workspace_id": emulator.ContosoWorkspaceID}, &out)
	if code != http.StatusConflict || out.Error.Code != "not_connected" {
		t.Fatalf("HTTP %d %+v, want 409 not_connected", code, out)
	}
}

func TestAPITokenOfOneWorkspaceSeesNothingOfAnother(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.connect()
	m := e.addMonitor(map[string]any{"name": "A's monitor"})
	e.incident(guid(7), e.clock.Now().Add(1), nil)
	e.clock.Advance(60e9)
	e.mustPoll(m.ID)
	alerts := e.alerts()
	if len(alerts) != 1 {
		t.Fatalf("%d alerts", len(alerts))
	}
	_, tokB, err := e.app.CreateWorkspace(t.Context(), "Other SOC")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		method, path string
		body         any
		want         int
	}{
		{"GET", "/api/v1/monitors/" + m.ID, nil, 404},
		{"PATCH", "/api/v1/monitors/" + m.ID, map[string]any{"name": "stolen"}, 404},
		{"DELETE", "/api/v1/monitors/" + m.ID, nil, 404},
		{"GET", "/api/v1/alerts/" + alerts[0].ID, nil, 404},
		{"DELETE", "/api/v1/integrations/sentinel", nil, 404},
	} {
		if code := doAs(t, e.url, tokB, c.method, c.path, c.body, nil); code != c.want {
			t.Errorf("B %s %s: HTTP %d, want %d", c.method, c.path, code, c.want)
		}
	}
	var list struct {
		Alerts []api.AlertView `json:"alerts"`
	}
	doAs(t, e.url, tokB, "GET", "/api/v1/alerts", nil, &list)
	var ms struct {
		Monitors []api.MonitorView `json:"monitors"`
	}
	doAs(t, e.url, tokB, "GET", "/api/v1/monitors", nil, &ms)
	var v api.IntegrationView
	doAs(t, e.url, tokB, "GET", "/api/v1/integrations/sentinel", nil, &v)
	if len(list.Alerts) != 0 || len(ms.Monitors) != 0 || v.Connected {
		t.Fatalf("B sees A's data: %d alerts, %d monitors, connected=%v", len(list.Alerts), len(ms.Monitors), v.Connected)
	}
	// And A's things are untouched.
	if got := e.monitor(m.ID); got.Name != "A's monitor" {
		t.Fatalf("A's monitor renamed to %q", got.Name)
	}
	for _, tok := range []string{"", "clr_nonsense"} {
		if code := doAs(t, e.url, tok, "GET", "/api/v1/alerts", nil, nil); code != 401 {
			t.Errorf("token %q: HTTP %d, want 401", tok, code)
		}
	}
}
