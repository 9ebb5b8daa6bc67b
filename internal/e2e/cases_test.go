package e2e

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/clarion/sentinel/internal/api"
	"github.com/clarion/sentinel/internal/app"
	"github.com/clarion/sentinel/internal/demo"
	"github.com/clarion/sentinel/internal/emulator"
	"github.com/clarion/sentinel/internal/monitor"
	"github.com/clarion/sentinel/internal/store"
)

// TestCases runs the reported-fault cases of ../shared/cases/polling.md,
// each named by its id, against the emulator over real HTTP.
func TestCases(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		id string
		fn func(*testing.T)
	}{
		{"P01", caseP01}, {"P02a", caseP02a}, {"P02b", caseP02b}, {"P03", caseP03}, {"P05", caseP05},
		{"P06", caseP06}, {"P07", caseP07}, {"P08a", caseP08a}, {"P08b", caseP08b}, {"P08c", caseP08c},
		{"P10", caseP10}, {"P10/variant", caseP10Variant}, {"P11", caseP11}, {"P12", caseP12},
		{"P15", caseP15}, {"P16", caseP16}, {"P17", caseP17}, {"P18", caseP18},
		{"P20a", caseP20a}, {"P20b", caseP20b}, {"P20c", caseP20c},
	} {
		t.Run(c.id, func(t *testing.T) {
			t.Parallel()
			c.fn(t)
		})
	}
}

// recorder wraps the real upstream to see the queries Clarion sends.
type recorder struct {
	next    monitor.Source
	mu      sync.Mutex
	queries []string
}

func (r *recorder) QueryIncidents(ctx context.Context, conn store.Connection, m store.Monitor, kql string) (monitor.Page, error) {
	r.mu.Lock()
	r.queries = append(r.queries, kql)
	r.mu.Unlock()
	return r.next.QueryIncidents(ctx, conn, m, kql)
}

func (r *recorder) all() []string { r.mu.Lock(); defer r.mu.Unlock(); return slices.Clone(r.queries) }

// engine builds a second engine over the env's store and upstream with its
// own settings (page budget, look-back), recording the queries it sends.
func (e *env) engine(cfg monitor.Config) (*monitor.Engine, *recorder) {
	rec := &recorder{next: &app.Upstream{Connections: e.app.Connections, Client: e.app.Sentinel}}
	if cfg.Owner == "" {
		cfg.Owner = "replica-1"
	}
	cfg.Now = e.clock.Now
	if cfg.PortalHosts == nil {
		cfg.PortalHosts = e.app.Config.PortalHosts
	}
	if cfg.Lookback == 0 {
		cfg.Lookback = e.app.Config.Lookback
	}
	return monitor.New(cfg, e.app.Store, rec), rec
}

// pollWith polls the monitor once with eng, moving the clock to its due time.
func (e *env) pollWith(eng *monitor.Engine, id string) error {
	e.t.Helper()
	m, err := e.app.Store.GetMonitor(e.t.Context(), e.ws.ID, id)
	if err != nil {
		e.t.Fatal(err)
	}
	e.clock.Set(m.NextPollAt)
	next, err := eng.PollOnce(e.t.Context(), id)
	if next.IsZero() && err == nil {
		e.t.Fatalf("monitor %s was not polled", id)
	}
	return err
}

func (e *env) stored(id string) store.Monitor {
	e.t.Helper()
	m, err := e.app.Store.GetMonitor(e.t.Context(), e.ws.ID, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

func (e *env) lakeCalls() int {
	return e.emu.Stats().Tenant(emulator.ContosoTenantID).Tools[emulator.ToolQueryLake].Count
}

// exactlyOnce asserts that the workspace has exactly one alert for each of
// the incidents and none for any other.
func (e *env) exactlyOnce(ids ...string) {
	e.t.Helper()
	got := e.alertCounts()
	for _, id := range ids {
		if got[id] != 1 {
			e.t.Fatalf("incident %s has %d alerts, want 1 (all: %v)", id, got[id], got)
		}
	}
	if len(got) != len(ids) {
		e.t.Fatalf("%d incidents alerted, want %d: %v", len(got), len(ids), got)
	}
}

func caseP01(t *testing.T) {
	e := setup(t)
	e.connect()
	m := e.addMonitor(map[string]any{})
	base := e.clock.Now()
	g101, g102 := guid(101), guid(102)
	e.incident(g101, base.Add(3*time.Minute+10*time.Second), map[string]any{"IncidentNumber": 101})
	e.incidentVisibleAt(g102, base.Add(2*time.Minute+50*time.Second), base.Add(5*time.Minute), map[string]any{"IncidentNumber": 102})
	e.clock.Set(base.Add(4 * time.Minute))
	e.mustPoll(m.ID)
	e.exactlyOnce(g101)
	for range 3 {
		e.clock.Advance(time.Minute)
		e.mustPoll(m.ID)
	}
	e.exactlyOnce(g101, g102)
}

func caseP02a(t *testing.T) {
	e := setup(t)
	e.connect()
	m := e.addMonitor(map[string]any{})
	base := e.clock.Now() // 10:00
	g7 := guid(7)
	e.incidentVisibleAt(g7, base.Add(90*time.Second), base.Add(3*time.Minute), nil)
	e.clock.Set(base.Add(time.Minute))
	e.mustPoll(m.ID)
	e.clock.Set(base.Add(2 * time.Minute))
	e.mustPoll(m.ID)
	if n := len(e.alerts()); n != 0 {
		t.Fatalf("%d alerts before G-7 is visible", n)
	}
	e.clock.Set(base.Add(3 * time.Minute))
	e.mustPoll(m.ID)
	e.exactlyOnce(g7)
}

func caseP02b(t *testing.T) {
	e := setup(t)
	e.connect()
	m := e.addMonitor(map[string]any{})
	small, _ := e.engine(monitor.Config{Lookback: 2 * time.Minute})
	base := e.clock.Now()
	var ids []string
	for i := range 30 {
		ids = append(ids, guid(i+1))
		e.incident(guid(i+1), base.Add(time.Duration(i+1)*10*time.Second), nil)
	}
	e.clock.Set(base.Add(6 * time.Minute))
	if err := e.pollWith(small, m.ID); err != nil {
		t.Fatal(err)
	}
	e.exactlyOnce(ids...)
	ids = append(ids, guid(31))
	e.incident(guid(31), base.Add(6*time.Minute), nil)
	big, rec := e.engine(monitor.Config{Lookback: 10 * time.Minute})
	e.clock.Advance(time.Minute)
	if err := e.pollWith(big, m.ID); err != nil {
		t.Fatal(err)
	}
	e.exactlyOnce(ids...)
	c := e.stored(m.ID).Health.Counts
	if c.Returned != 31 || c.Ingested != 1 || c.AlreadyKnown != 30 {
		t.Fatalf("counts %+v, want 31 returned, 1 ingested, 30 already known", c)
	}
	if len(rec.all()) == 0 {
		t.Fatal("the wider look-back engine sent no query")
	}
}

func caseP03(t *testing.T) {
	e := setup(t, envOpts{pageSize: 5})
	e.connect()
	m := e.addMonitor(map[string]any{"severities": []string{"high"}})
	base := e.clock.Now()
	for i := range 12 {
		e.incident(guid(i+1), base.Add(time.Duration(i+1)*time.Second), map[string]any{"Severity": "Low"})
	}
	h1 := guid(99)
	e.incident(h1, base.Add(30*time.Second), map[string]any{"Severity": "High"})
	e.clock.Set(base.Add(time.Minute))
	before := e.lakeCalls()
	e.mustPoll(m.ID)
	e.exactlyOnce(h1)
	// 13 rows in pages of 5: three queries, not one page read again and again.
	if n := e.lakeCalls() - before; n != 3 {
		t.Fatalf("%d queries for 13 rows in pages of 5, want 3", n)
	}
	s := e.stored(m.ID)
	if !s.Watermark.Equal(base.Add(30 * time.Second)) {
		t.Fatalf("watermark %v, want past the low incidents at %v", s.Watermark, base.Add(30*time.Second))
	}
	if c := s.Health.Counts; c.FilteredSeverity != 12 || c.Ingested != 1 {
		t.Fatalf("counts %+v", c)
	}
	// With a page budget of one page per poll, G-H1 still arrives within
	// two polls of the low page... and the low page is not re-read.
	e2 := setup(t, envOpts{pageSize: 12})
	e2.connect()
	m2 := e2.addMonitor(map[string]any{"severities": []string{"high"}})
	b2 := e2.clock.Now()
	for i := range 12 {
		e2.incident(guid(i+1), b2.Add(time.Duration(i+1)*time.Second), map[string]any{"Severity": "Low"})
	}
	e2.incident(h1, b2.Add(30*time.Second), map[string]any{"Severity": "High"})
	one, rec := e2.engine(monitor.Config{PageSize: 12, MaxPagesPerPoll: 1})
	e2.clock.Set(b2.Add(time.Minute))
	for range 2 {
		if err := e2.pollWith(one, m2.ID); err != nil {
			t.Fatal(err)
		}
	}
	e2.exactlyOnce(h1)
	q := rec.all()
	if len(q) != 2 || q[0] == q[1] {
		t.Fatalf("queries %q: the second poll must resume after the low page", q)
	}
}

func caseP05(t *testing.T) {
	e := setup(t)
	e.connect()
	m := e.addMonitor(map[string]any{})
	at := e.clock.Now().Add(time.Second).Truncate(time.Second).Add(123456700 * time.Nanosecond)
	ga, gb, gc := "00000000-0000-4000-8000-00000000000a", "00000000-0000-4000-8000-00000000000b", "00000000-0000-4000-8000-00000000000c"
	for _, g := range []string{gc, ga, gb} {
		e.incident(g, at, nil)
	}
	eng, rec := e.engine(monitor.Config{PageSize: 2, MaxPagesPerPoll: 1})
	e.clock.Advance(time.Minute)
	for range 4 {
		if err := e.pollWith(eng, m.ID); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(time.Second)
	}
	e.exactlyOnce(ga, gb, gc)
	if q := rec.all(); !strings.Contains(q[1], "2026-06-21T10:00:01.1234567Z") || !strings.Contains(q[1], "'"+gb+"'") {
		t.Fatalf("second query does not resume at (time, G-b) with 100 ns precision:\n%s", q[1])
	}
}

func caseP06(t *testing.T) {
	e := setup(t)
	e.connect()
	m := e.addMonitor(map[string]any{})
	base := e.clock.Now()
	g42 := guid(42)
	created := base.Add(time.Second)
	e.incident(g42, created, map[string]any{"Status": "New"})
	for i, st := range []string{"Active", "Closed"} {
		if _, err := e.emu.UpdateIncident(emulator.ContosoTenantID, emulator.ContosoWorkspaceID, g42,
			emulator.Row{"Status": st, "LastModifiedTime": created.Add(time.Duration(i+1) * time.Minute)}, base); err != nil {
			t.Fatal(err)
		}
	}
	e.clock.Set(base.Add(5 * time.Minute))
	e.mustPoll(m.ID)
	e.exactlyOnce(g42)
	a := e.alerts()[0]
	if a.Status != "Closed" || !strings.Contains(string(a.Payload), `"Closed"`) {
		t.Fatalf("alert status %q payload %s, want the latest row (Closed)", a.Status, a.Payload)
	}
}

func caseP07(t *testing.T) {
	e := setup(t)
	e.connect()
	m := e.addMonitor(map[string]any{})
	base := e.clock.Now()
	var ids []string
	for i := range 120 {
		ids = append(ids, guid(i+1))
		e.incident(guid(i+1), base.Add(time.Second+time.Duration(i)*time.Millisecond), nil)
	}
	eng, _ := e.engine(monitor.Config{PageSize: 50, MaxPagesPerPoll: 2})
	e.clock.Advance(time.Minute)
	if err := e.pollWith(eng, m.ID); err != nil {
		t.Fatal(err)
	}
	if n := len(e.alerts()); n != 100 {
		t.Fatalf("%d alerts after a two-page poll, want 100", n)
	}
	if wm := e.stored(m.ID).Watermark; wm.After(base.Add(time.Second + 99*time.Millisecond)) {
		t.Fatalf("watermark %v passed unread incidents", wm)
	}
	if err := e.pollWith(eng, m.ID); err != nil {
		t.Fatal(err)
	}
	e.exactlyOnce(ids...)
}

func caseP08a(t *testing.T) {
	e := setup(t)
	e.connect()
	m := e.addMonitor(map[string]any{"search": "", "severities": []string{}})
	base := e.clock.Now()
	for i := range 3 {
		e.incident(guid(i+1), base.Add(time.Duration(i+1)*time.Second), nil)
	}
	eng, rec := e.engine(monitor.Config{PageSize: 2})
	e.clock.Advance(time.Minute)
	if err := e.pollWith(eng, m.ID); err != nil {
		t.Fatal(err)
	}
	e.exactlyOnce(guid(1), guid(2), guid(3))
	q := rec.all()
	if len(q) != 2 {
		t.Fatalf("%d queries, want 2 pages", len(q))
	}
	for _, s := range q {
		for _, bad := range []string{"Severity", "Title", "Description", "''", "in ()", "contains"} {
			if strings.Contains(s, bad) {
				t.Fatalf("query carries an empty or filter clause %q:\n%s", bad, s)
			}
		}
	}
	if !strings.Contains(q[1], "'"+guid(2)+"'") {
		t.Fatalf("second page does not continue after the first:\n%s", q[1])
	}
}

func caseP08b(t *testing.T) {
	e := setup(t)
	e.connect()
	m := e.addMonitor(map[string]any{})
	var elsewhere atomic.Int32
	var leaked atomic.Bool
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		if r.Header.Get("Authorization") != "" {
			leaked.Store(true)
		}
	}))
	t.Cleanup(other.Close)
	e.incident(guid(1), e.clock.Now().Add(time.Second), nil)
	e.clock.Advance(time.Minute)
	e.emu.SetFault(emulator.Fault{Kind: emulator.FaultRedirect, Target: emulator.ToolQueryLake, Location: other.URL + "/mcp/data-exploration", Count: 1})
	if err := e.poll(m.ID); err == nil {
		t.Fatal("a poll redirected to another host succeeded")
	}
	if elsewhere.Load() != 0 || leaked.Load() {
		t.Fatalf("%d requests reached the other host (token leaked: %v)", elsewhere.Load(), leaked.Load())
	}
	if h := e.monitor(m.ID).Health; h.Status != store.HealthFailing || h.LastError == "" {
		t.Fatalf("health %+v, want failing with an error", h)
	}
	e.mustPoll(m.ID)
	e.exactlyOnce(guid(1))
}

func caseP08c(t *testing.T) {
	e := setup(t)
	e.connect()
	m := e.addMonitor(map[string]any{})
	base := e.clock.Now()
	var ids []string
	for i := range 5 {
		ids = append(ids, guid(i+1))
		e.incident(guid(i+1), base.Add(time.Duration(i+1)*time.Second), nil)
	}
	eng, _ := e.engine(monitor.Config{PageSize: 2, MaxPagesPerPoll: 1})
	e.clock.Advance(time.Minute)
	if err := e.pollWith(eng, m.ID); err != nil {
		t.Fatal(err)
	}
	cursor := e.stored(m.ID).CursorName
	e.emu.SetFault(emulator.Fault{Kind: emulator.FaultRepeatAnswer, Target: emulator.ToolQueryLake, Count: 1})
	err := e.pollWith(eng, m.ID)
	if !errors.Is(err, monitor.ErrPagingStalled) {
		t.Fatalf("poll answered with the same page: err %v, want ErrPagingStalled", err)
	}
	if got := e.stored(m.ID).CursorName; got != cursor {
		t.Fatalf("cursor moved from %s to %s on a repeated page", cursor, got)
	}
	e.exactlyOnce(ids[:2]...)
	for range 3 {
		if err := e.pollWith(eng, m.ID); err != nil {
			t.Fatal(err)
		}
	}
	e.exactlyOnce(ids...)
}

func caseP10(t *testing.T) {
	e := setup(t)
	e.connect()
	m := e.addMonitor(map[string]any{"name": "throttled"})
	other := e.addMonitor(map[string]any{"name": "same tenant", "workspace_id": emulator.ContosoWorkspace2ID})
	base := e.clock.Now()
	e.clock.Advance(time.Minute)
	e.emu.SetFault(emulator.Fault{Kind: emulator.FaultThrottle, TenantID: emulator.ContosoTenantID, Target: emulator.ToolQueryLake, RetryAfter: 30 * time.Second, Count: 1})
	if err := e.poll(m.ID); err == nil {
		t.Fatal("throttled poll reported success")
	}
	throttledAt := e.clock.Now()
	s := e.stored(m.ID)
	if s.Health.Status != store.HealthThrottled || !strings.Contains(s.Health.LastError, "throttl") {
		t.Fatalf("health %+v, want throttled", s.Health)
	}
	if !s.Watermark.Equal(s.CreatedAt) && !s.Watermark.IsZero() {
		t.Fatalf("watermark moved by a failed poll: %v", s.Watermark)
	}
	if s.NextPollAt.Before(throttledAt.Add(30 * time.Second)) {
		t.Fatalf("next poll at %v, before Retry-After ends at %v", s.NextPollAt, throttledAt.Add(30*time.Second))
	}
	// Another monitor of the same tenant, due 10 s later, makes no request.
	calls := e.lakeCalls()
	e.clock.Set(throttledAt.Add(10 * time.Second))
	if next, _ := e.app.Engine.PollOnce(t.Context(), other.ID); next.IsZero() {
		t.Fatal("the other monitor was not due")
	}
	if got := e.lakeCalls(); got != calls {
		t.Fatalf("%d requests to the throttled tenant before Retry-After passed", got-calls)
	}
	if h := e.stored(other.ID).Health; h.Status != store.HealthThrottled {
		t.Fatalf("other monitor of the tenant: %+v, want throttled", h)
	}
	for i := range 3 {
		e.incident(guid(i+1), base.Add(time.Duration(i+1)*time.Second), nil)
	}
	e.clock.Set(throttledAt.Add(60 * time.Second))
	e.mustPoll(m.ID)
	e.exactlyOnce(guid(1), guid(2), guid(3))
	if h := e.monitor(m.ID).Health; h.Status != store.HealthHealthy {
		t.Fatalf("health after recovery %+v", h)
	}
}

func caseP10Variant(t *testing.T) {
	e := setup(t)
	e.connect()
	var ids []string
	for i := range 40 {
		ids = append(ids, e.addMonitor(map[string]any{"name": "m" + guid(i)}).ID)
	}
	// A second Clarion workspace connected to another tenant.
	_, tokB, err := e.app.CreateWorkspace(t.Context(), "Fabrikam SOC")
	if err != nil {
		t.Fatal(err)
	}
	if err := demo.Connect(t.Context(), e.url, tokB, emulator.FabrikamAdminUsername); err != nil {
		t.Fatal(err)
	}
	var mb api.MonitorView
	if code := doAs(t, e.url, tokB, "POST", "/api/v1/monitors", map[string]any{"name": "fab", "workspace_id": emulator.FabrikamWorkspaceID}, &mb); code != 201 {
		t.Fatalf("HTTP %d", code)
	}
	e.clock.Advance(time.Minute)
	e.emu.SetFault(emulator.Fault{Kind: emulator.FaultThrottle, TenantID: emulator.ContosoTenantID, Target: emulator.ToolQueryLake, RetryAfter: 30 * time.Second})
	now := e.clock.Now()
	for _, id := range ids {
		if _, err := e.app.Engine.PollOnce(t.Context(), id); err == nil {
			t.Fatal("poll of a throttled tenant succeeded")
		}
	}
	if n := e.lakeCalls(); n > 2 {
		t.Fatalf("%d requests to the throttled tenant from 40 monitors, want the first one only", n)
	}
	next := map[time.Time]bool{}
	for _, id := range ids {
		s := e.stored(id)
		if s.NextPollAt.Before(now.Add(30 * time.Second)) {
			t.Fatalf("monitor retries at %v, before Retry-After", s.NextPollAt)
		}
		if s.NextPollAt.After(now.Add(30*time.Second + 10*time.Second)) {
			t.Fatalf("monitor retries at %v: not bounded", s.NextPollAt)
		}
		next[s.NextPollAt] = true
	}
	if len(next) < 20 {
		t.Fatalf("40 throttled monitors retry at only %d distinct times: not spread", len(next))
	}
	// The other tenant is not delayed.
	if _, err := e.app.Engine.PollOnce(t.Context(), mb.ID); err != nil {
		t.Fatalf("other tenant's monitor: %v", err)
	}
	var got api.MonitorView
	doAs(t, e.url, tokB, "GET", "/api/v1/monitors/"+mb.ID, nil, &got)
	if got.Health.Status != store.HealthHealthy {
		t.Fatalf("other tenant's monitor %+v, want healthy", got.Health)
	}
	e.emu.ClearFaults()
}

func caseP11(t *testing.T) {
	for _, code := range []int{700082, 50173, 70043} {
		t.Run(itoa(code), func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			e.connect()
			m := e.addMonitor(map[string]any{})
			base := e.clock.Now()
			e.incident(guid(1), base.Add(time.Second), nil)
			e.clock.Advance(time.Minute)
			e.mustPoll(m.ID)
			wm := e.stored(m.ID).Watermark
			e.emu.RevokeGrants(emulator.ContosoTenantID, code)
			e.incident(guid(2), e.clock.Now().Add(time.Second), nil)
			e.clock.Advance(2 * time.Hour) // past the access token's lifetime: a refresh is needed
			if err := e.poll(m.ID); err == nil {
				t.Fatal("poll with a dead grant succeeded")
			}
			var v api.IntegrationView
			e.do("GET", "/api/v1/integrations/sentinel", nil, &v)
			if v.State != store.StateReconnectRequired || !strings.Contains(v.StateReason, itoa(code)) {
				t.Fatalf("integration %+v, want reconnect_required naming AADSTS%d", v, code)
			}
			s := e.stored(m.ID)
			if s.Health.Status != store.HealthPaused || s.Health.LastError == "" || !s.Watermark.Equal(wm) {
				t.Fatalf("monitor %+v (watermark %v, was %v), want paused with a sentence, watermark untouched", s.Health, s.Watermark, wm)
			}
			calls := e.emu.Stats().Tenant(emulator.ContosoTenantID).Total.Count
			for range 3 {
				e.clock.Advance(time.Minute)
				_ = e.poll(m.ID)
			}
			if got := e.emu.Stats().Tenant(emulator.ContosoTenantID).Total.Count; got != calls {
				t.Fatalf("%d calls to Microsoft while re-connect is required", got-calls)
			}
			e.connect()
			if s := e.stored(m.ID); s.NextPollAt.After(e.clock.Now()) {
				t.Fatalf("after reconnect the monitor waits until %v instead of polling at once", s.NextPollAt)
			}
			e.mustPoll(m.ID)
			e.exactlyOnce(guid(1), guid(2))
		})
	}
}

func caseP12(t *testing.T) {
	cases := []struct {
		id    string
		fault *emulator.Fault
		opts  emulator.BrowseOptions
		code  string
		says  string
	}{
		{id: "a", fault: &emulator.Fault{Kind: emulator.FaultAADSTS, Target: emulator.EndpointConsent, AADSTS: 650052, Error: "invalid_client"},
			code: "service_not_enabled", says: "az ad sp create --id 7b7b3966-1961-47b5-b080-43ca5482e21c"},
		{id: "b", opts: emulator.BrowseOptions{Cancel: true}, code: "consent_declined", says: "declined"},
		{id: "c", fault: &emulator.Fault{Kind: emulator.FaultWrongTenantSignIn}, code: "wrong_tenant", says: "different tenant than the one that granted consent"},
	}
	for _, c := range cases {
		t.Run(c.id, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			if c.fault != nil {
				e.emu.SetFault(*c.fault)
			}
			status, body, err := demo.ConnectWith(t.Context(), e.url, e.token, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			if status == http.StatusOK || !strings.Contains(body, `data-code="`+c.code+`"`) || !strings.Contains(body, c.says) {
				t.Fatalf("final page HTTP %d, want %q saying %q:\n%s", status, c.code, c.says, body)
			}
			if _, err := e.app.Store.GetConnection(t.Context(), e.ws.ID); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("a connection was stored (err %v)", err)
			}
		})
	}
}

func caseP15(t *testing.T) {
	e := setup(t)
	e.connect()
	m := e.addMonitor(map[string]any{})
	day := e.clock.Now().Add(time.Hour).Format("2006-01-02")
	// Creation times in every format seen, out of order; ids sort the other way.
	formats := []string{
		day + "T11:06:41.7433333Z",
		day + "T11:06:41Z",
		day + "T11:06:41.5Z",
		day + "T13:06:41.6+02:00",
		day + " 11:06:41.74+00:00",
	}
	var ids []string
	for i, f := range formats {
		ids = append(ids, guid(90-i))
		e.incident(guid(90-i), time.Time{}, map[string]any{"CreatedTime": f, "LastModifiedTime": f})
	}
	e.clock.Set(e.clock.Now().Add(2 * time.Hour))
	e.mustPoll(m.ID)
	e.exactlyOnce(ids...)
	want := map[string]string{
		guid(90): "11:06:41.7433333", guid(89): "11:06:41", guid(88): "11:06:41.5", guid(87): "11:06:41.6", guid(86): "11:06:41.74",
	}
	for _, a := range e.alerts() {
		if got := a.IncidentCreatedAt.UTC().Format("15:04:05.9999999"); got != want[a.IncidentID] {
			t.Errorf("%s created %s, want %s", a.IncidentID, got, want[a.IncidentID])
		}
	}
	wm := e.stored(m.ID).Watermark
	if got := wm.UTC().Format("15:04:05.0000000"); got != "11:06:41.7433333" {
		t.Fatalf("watermark %s, want the latest creation time at 100 ns", got)
	}
	// A restart: a new process on the same database polls without a duplicate.
	a2, err := app.New(t.Context(), e.app.Config, e.app.Log, app.Options{Now: e.clock.Now, AutoMigrate: true, Owner: "replica-2"})
	if err != nil {
		t.Fatal(err)
	}
	defer a2.Close()
	if got := e.stored(m.ID).Watermark; !got.Equal(wm) {
		t.Fatalf("watermark %v after reopening, want %v", got, wm)
	}
	e.clock.Set(e.stored(m.ID).NextPollAt)
	if _, err := a2.Engine.PollOnce(t.Context(), m.ID); err != nil {
		t.Fatal(err)
	}
	e.exactlyOnce(ids...)
}

func caseP16(t *testing.T) {
	e := setup(t)
	e.connect()
	none := e.addMonitor(map[string]any{"name": "no filter"})
	all := e.addMonitor(map[string]any{"name": "all four", "severities": []string{"low", "medium", "high", "critical"}})
	base := e.clock.Now()
	sev := []any{"High", "Informational", "informational", "", nil, "unknownFutureValue"}
	want := []string{"high", "low", "low", "medium", "medium", "medium"}
	for i, s := range sev {
		f := map[string]any{"Severity": s}
		if s == nil {
			f = map[string]any{"Severity": absent{}} // missing
		}
		e.incident(guid(i+1), base.Add(time.Duration(i+1)*time.Second), f)
	}
	e.clock.Advance(time.Minute)
	e.mustPoll(none.ID)
	e.mustPoll(all.ID)
	got := map[string]api.AlertView{}
	for _, a := range e.alerts() {
		got[a.IncidentID] = a
	}
	for i := range sev {
		a, ok := got[guid(i+1)]
		if !ok {
			t.Fatalf("severity %v: no alert", sev[i])
		}
		if a.Severity != want[i] {
			t.Errorf("severity %v → %q, want %q", sev[i], a.Severity, want[i])
		}
		if s, ok := sev[i].(string); ok && s != "" && (a.SourceSeverity != s || !strings.Contains(string(a.Payload), `"Severity":"`+s+`"`)) {
			t.Errorf("severity %q: source %q, payload does not keep the original", s, a.SourceSeverity)
		}
	}
	for _, id := range []string{none.ID, all.ID} {
		if c := e.stored(id).Health.Counts; c.FilteredSeverity != 0 {
			t.Fatalf("monitor %s dropped %d by severity, want none", id, c.FilteredSeverity)
		}
	}
}

func caseP17(t *testing.T) {
	e := setup(t)
	e.connect()
	m := e.addMonitor(map[string]any{})
	search := e.addMonitor(map[string]any{"name": "search", "search": "incident"})
	base := e.clock.Now()
	// 1,000 characters of mixed width; the byte limit falls inside them.
	title := strings.Repeat("事件🔒a", 250)
	desc := strings.Repeat("d", 300<<10)
	e.incident(guid(1), base.Add(1*time.Second), map[string]any{"Title": title, "Description": desc})
	e.incident(guid(2), base.Add(2*time.Second), map[string]any{"Title": "no description key"})
	e.incident(guid(3), base.Add(3*time.Second), map[string]any{"Title": "null description", "Description": nil})
	e.incident(guid(4), base.Add(4*time.Second), map[string]any{"Title": "INCIDENT on host"})
	e.clock.Advance(time.Minute)
	e.mustPoll(m.ID)
	e.mustPoll(search.ID)
	e.exactlyOnce(guid(1), guid(2), guid(3), guid(4))
	for _, a := range e.alerts() {
		switch a.IncidentID {
		case guid(1):
			if !utf8.ValidString(a.Title) || !strings.HasPrefix(title, a.Title) || len(a.Title) == 0 || len(a.Title) > 1024 {
				t.Fatalf("title cut badly: %d bytes, valid %v", len(a.Title), utf8.ValidString(a.Title))
			}
			if !strings.Contains(string(a.Payload), title) || !strings.Contains(string(a.Payload), desc) {
				t.Fatal("payload does not hold the full title and description")
			}
		case guid(2), guid(3):
			if a.Description != "" {
				t.Fatalf("%s description %q, want empty", a.Title, a.Description)
			}
		case guid(4):
			if a.MonitorID != search.ID && e.stored(search.ID).Health.Counts.AlreadyKnown != 1 {
				t.Fatal("case-insensitive search did not match INCIDENT")
			}
		}
	}
	if c := e.stored(search.ID).Health.Counts; c.FilteredSearch != 3 {
		t.Fatalf("search monitor counts %+v, want 3 filtered by search", c)
	}
}

func caseP18(t *testing.T) {
	e := setup(t)
	e.connect()
	base := e.clock.Now()
	searches := []string{"O'Brien", "it's", "x') or (1 eq 1", `" or 1==1 //`}
	ids := map[string]string{}
	for _, s := range searches {
		ids[s] = e.addMonitor(map[string]any{"name": "search " + s, "search": s}).ID
	}
	e.incident(guid(1), base.Add(time.Second), map[string]any{"Title": "Login by O'Brien"})
	e.incident(guid(2), base.Add(2*time.Second), map[string]any{"Title": "other"})
	eng, rec := e.engine(monitor.Config{})
	e.clock.Advance(time.Minute)
	matched := map[string]int{}
	for _, s := range searches {
		m := store.Monitor{ID: ids[s]}
		if err := e.pollWith(eng, m.ID); err != nil {
			t.Fatalf("search %q: %v", s, err)
		}
		c := e.stored(m.ID).Health.Counts
		matched[s] = c.Ingested + c.AlreadyKnown
	}
	if matched["O'Brien"] != 1 || matched["it's"] != 0 || matched["x') or (1 eq 1"] != 0 || matched[`" or 1==1 //`] != 0 {
		t.Fatalf("matches %v", matched)
	}
	for _, q := range rec.all() {
		for _, s := range []string{"Brien", "it's", "1 eq 1", "1==1"} {
			if strings.Contains(q, s) {
				t.Fatalf("search text %q reached the query:\n%s", s, q)
			}
		}
	}
	e.exactlyOnce(guid(1))
}

func caseP20a(t *testing.T) {
	e := setup(t)
	e.connect()
	var ms []api.MonitorView
	for i := range 3 {
		ms = append(ms, e.addMonitor(map[string]any{"name": "m" + itoa(i)}))
	}
	e.incident(guid(1), e.clock.Now().Add(time.Second), nil)
	e.clock.Advance(time.Minute)
	e.mustPoll(ms[0].ID)
	e.incident(guid(2), e.clock.Now().Add(time.Second), nil)
	e.clock.Advance(time.Minute)
	// A poll in flight (Microsoft answers slowly) when the disconnect comes.
	e.emu.SetFault(emulator.Fault{Kind: emulator.FaultDelay, Target: emulator.ToolQueryLake, Delay: 1500 * time.Millisecond, Count: 1})
	calls := e.lakeCalls()
	done := make(chan error, 1)
	go func() {
		e.clock.Set(e.stored(ms[1].ID).NextPollAt)
		_, err := e.app.Engine.PollOnce(context.Background(), ms[1].ID)
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for e.lakeCalls() == calls {
		if time.Now().After(deadline) {
			t.Fatal("the slow poll never reached Microsoft")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if code := e.do("DELETE", "/api/v1/integrations/sentinel", nil, nil); code != 200 {
		t.Fatalf("disconnect HTTP %d", code)
	}
	after := e.emu.Stats().Tenant(emulator.ContosoTenantID).Total.Count
	if err := <-done; err == nil {
		t.Fatal("the poll in flight reported success after disconnect")
	}
	e.exactlyOnce(guid(1)) // G-2 was read by the poll in flight but not written
	var list struct {
		Monitors []api.MonitorView `json:"monitors"`
	}
	e.do("GET", "/api/v1/monitors", nil, &list)
	if len(list.Monitors) != 0 {
		t.Fatalf("%d monitors after disconnect", len(list.Monitors))
	}
	if got := e.emu.Stats().Tenant(emulator.ContosoTenantID).Total.Count; got != after {
		t.Fatalf("%d calls to Microsoft after disconnect returned", got-after)
	}
}

func caseP20b(t *testing.T) {
	e := setup(t)
	e.connect()
	m := e.addMonitor(map[string]any{})
	e.clock.Advance(time.Minute)
	e.mustPoll(m.ID)
	e.emu.RevokeGrants(emulator.ContosoTenantID, 700016)
	for range 2 {
		e.clock.Advance(2 * time.Hour)
		_ = e.poll(m.ID)
	}
	h := e.monitor(m.ID).Health
	if h.Status != store.HealthPaused || !strings.Contains(strings.ToLower(h.LastError), "revoked") {
		t.Fatalf("health %+v, want paused saying access was revoked", h)
	}
	calls := e.emu.Stats().Tenant(emulator.ContosoTenantID).Total.Count
	e.clock.Advance(2 * time.Hour)
	_ = e.poll(m.ID)
	if got := e.emu.Stats().Tenant(emulator.ContosoTenantID).Total.Count; got != calls {
		t.Fatalf("%d calls after access was revoked", got-calls)
	}
}

func caseP20c(t *testing.T) {
	e := setup(t)
	e.connect()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.app.Engine.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor := func(want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for e.app.Engine.Running() != want {
			if time.Now().After(deadline) {
				t.Fatalf("%d monitor loops running, want %d", e.app.Engine.Running(), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	for i := range 3 {
		e.addMonitor(map[string]any{"name": "before " + itoa(i)})
	}
	waitFor(3)
	e.do("DELETE", "/api/v1/integrations/sentinel", nil, nil)
	waitFor(0)
	e.connect()
	for i := range 3 {
		e.addMonitor(map[string]any{"name": "after " + itoa(i)})
	}
	waitFor(3)
	// Exactly one schedule per monitor: every loop's monitor is a current one.
	ms, _ := e.app.Store.ListEnabledMonitors(t.Context())
	if len(ms) != 3 {
		t.Fatalf("%d enabled monitors, want 3", len(ms))
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
