package e2e

// Tests for the feed engine (one sweep per Clarion workspace ×
// Sentinel workspace). Each test states what must hold.

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clarion/sentinel/internal/api"
	"github.com/clarion/sentinel/internal/demo"
	"github.com/clarion/sentinel/internal/emulator"
	"github.com/clarion/sentinel/internal/monitor"
	"github.com/clarion/sentinel/internal/sentinel"
	"github.com/clarion/sentinel/internal/store"
)

// brkMonitor is the oracle's view of one monitor.
type brkMonitor struct {
	id         string
	created    time.Time
	severities []string
	search     string
	gone       bool // deleted or disabled: its incidents may or may not be alerts
}

func (m brkMonitor) wants(inc brkIncident) bool {
	if inc.created.Before(m.created) {
		return false
	}
	sev := sentinel.MapSeverity(inc.severity)
	if len(m.severities) > 0 && len(m.severities) < 4 && !slices.Contains(m.severities, sev) {
		return false
	}
	return sentinel.MatchSearch(m.search, inc.title, "")
}

type brkIncident struct {
	name, severity, title string
	created               time.Time
}

// pollDue polls the feed of ws while it has due monitors now (a sweep cut
// by the page budget goes on at once); at most max polls. It returns how
// many polls polled something.
func (e *env) pollDue(eng *monitor.Engine, ws string, max int) int {
	e.t.Helper()
	n := 0
	for range max {
		next, err := eng.PollFeed(e.t.Context(), ws, emulator.ContosoWorkspaceID)
		if err != nil {
			e.t.Fatalf("poll feed of %s: %v", ws, err)
		}
		if next.IsZero() {
			return n
		}
		n++
		if next.After(e.clock.Now()) {
			return n
		}
	}
	return n
}

// checkOracle: every incident some live monitor wants is exactly one alert,
// made by a monitor that wants it; no alert for an incident no monitor
// (live or gone) wants.
func checkOracle(t *testing.T, alerts []api.AlertView, ms []*brkMonitor, incs []brkIncident) {
	t.Helper()
	byInc := map[string][]api.AlertView{}
	for _, a := range alerts {
		byInc[a.IncidentID] = append(byInc[a.IncidentID], a)
	}
	for _, inc := range incs {
		var live, any []string
		for _, m := range ms {
			if m.wants(inc) {
				any = append(any, m.id)
				if !m.gone {
					live = append(live, m.id)
				}
			}
		}
		got := byInc[inc.name]
		switch {
		case len(got) > 1:
			t.Errorf("incident %s (created %v, %s, %q): %d alerts, want 1", inc.name, inc.created.Format(time.TimeOnly), inc.severity, inc.title, len(got))
		case len(got) == 0 && len(live) > 0:
			t.Errorf("incident %s (created %v, %s, %q): no alert; monitors %v want it", inc.name, inc.created.Format(time.TimeOnly), inc.severity, inc.title, live)
		case len(got) == 1 && !slices.Contains(any, got[0].MonitorID):
			t.Errorf("incident %s (created %v, %s, %q): alert by monitor %s, which does not want it (wanted by %v)", inc.name, inc.created.Format(time.TimeOnly), inc.severity, inc.title, got[0].MonitorID, any)
		}
		delete(byInc, inc.name)
	}
	for name := range byInc {
		t.Errorf("alert for unknown incident %s", name)
	}
}

// TestFeedRandomizedMonitorsFiltersAndLateIncidents: monitors of one feed with different creation
// times and filters, incidents arriving late (inside the look-back) and
// updated, polled with a page budget of one page of 1–3 rows, sometimes
// leaving sweeps cut while monitors are added or deleted; a second Clarion
// workspace watches the same Sentinel workspace under its own sign-in.
// Every incident a live monitor wants must be exactly one alert per Clarion
// workspace, made by a monitor that wants it; nothing else is an alert.
func TestFeedRandomizedMonitorsFiltersAndLateIncidents(t *testing.T) {
	t.Parallel()
	for seed := range uint64(12) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			t.Parallel()
			feedRandom(t, seed)
		})
	}
}

func feedRandom(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 99))
	ps := 1 + rng.IntN(3)
	const lookback = 10 * time.Minute
	e := setup(t, envOpts{pageSize: ps, lookback: lookback})
	e.connect()
	wsB, tokB, err := e.app.CreateWorkspace(t.Context(), "Second SOC")
	if err != nil {
		t.Fatal(err)
	}
	if err := demo.Connect(t.Context(), e.url, tokB, ""); err != nil {
		t.Fatal(err)
	}
	eng, _ := e.engine(monitor.Config{PageSize: ps, MaxPagesPerPoll: 1, Lookback: lookback})

	sevs := []string{"High", "Medium", "Low", "Informational", "Critical", "weird"}
	filters := [][]string{nil, {"high"}, {"low"}, {"high", "critical"}, {"medium", "low"}}
	searches := []string{"", "", "phish"}
	var msA, msB []*brkMonitor
	addTo := func(ws string, tok string, list *[]*brkMonitor) {
		f := filters[rng.IntN(len(filters))]
		s := searches[rng.IntN(len(searches))]
		body := map[string]any{"name": fmt.Sprintf("m%d", len(*list)), "search": s}
		if f != nil {
			body["severities"] = f
		}
		body["workspace_id"] = emulator.ContosoWorkspaceID
		var mv api.MonitorView
		if code := doAs(t, e.url, tok, "POST", "/api/v1/monitors", body, &mv); code != 201 {
			t.Fatalf("create monitor in %s: HTTP %d", ws, code)
		}
		*list = append(*list, &brkMonitor{id: mv.ID, created: mv.CreatedAt, severities: f, search: s})
	}
	addTo("A", e.token, &msA)
	addTo("B", tokB, &msB)
	var incs []brkIncident
	n := 0
	for step := range 60 {
		e.clock.Advance(time.Duration(5+rng.IntN(35)) * time.Second)
		now := e.clock.Now()
		if rng.IntN(6) == 0 && len(msA) < 5 {
			addTo("A", e.token, &msA)
		}
		if rng.IntN(8) == 0 && len(msB) < 4 {
			addTo("B", tokB, &msB)
		}
		if step > 10 && rng.IntN(15) == 0 {
			// Delete a live monitor of A (its incidents need not be alerts).
			for _, m := range msA {
				if !m.gone {
					if code := e.do("DELETE", "/api/v1/monitors/"+m.id, nil, nil); code != 204 && code != 200 {
						t.Fatalf("delete: HTTP %d", code)
					}
					m.gone = true
					break
				}
			}
		}
		for range rng.IntN(4) {
			n++
			inc := brkIncident{name: guid(n), severity: sevs[rng.IntN(len(sevs))],
				created: now.Add(-time.Duration(rng.IntN(180)) * time.Second).Add(time.Duration(rng.IntN(1000)) * time.Millisecond)}
			inc.title = "Incident " + inc.name
			if rng.IntN(3) == 0 {
				inc.title = "Phishing " + inc.name
			}
			visible := now
			if rng.IntN(3) == 0 {
				visible = now.Add(time.Duration(rng.IntN(120)) * time.Second)
			}
			e.incidentVisibleAt(inc.name, inc.created, visible, map[string]any{"Severity": inc.severity, "Title": inc.title})
			incs = append(incs, inc)
		}
		if len(incs) > 0 && rng.IntN(4) == 0 {
			// An update: a newer row of the same incident (status only).
			inc := incs[rng.IntN(len(incs))]
			if _, err := e.emu.UpdateIncident(emulator.ContosoTenantID, emulator.ContosoWorkspaceID, inc.name,
				emulator.Row{"Status": "Active"}, now); err != nil {
				t.Fatal(err)
			}
		}
		polls := 100
		if rng.IntN(3) == 0 {
			polls = 1 // leave the sweep cut
		}
		e.pollDue(eng, e.ws.ID, polls)
		e.pollDue(eng, wsB.ID, polls)
	}
	// Let every late incident become visible and every sweep end.
	for range 12 {
		e.clock.Advance(40 * time.Second)
		e.pollDue(eng, e.ws.ID, 1000)
		e.pollDue(eng, wsB.ID, 1000)
	}
	t.Logf("page size %d, %d incidents, monitors A %d, B %d", ps, len(incs), len(msA), len(msB))
	checkOracle(t, e.alerts(), msA, incs)
	var page struct {
		Alerts []api.AlertView `json:"alerts"`
	}
	if code := doAs(t, e.url, tokB, "GET", "/api/v1/alerts?limit=500", nil, &page); code != 200 {
		t.Fatalf("alerts of B: HTTP %d", code)
	}
	checkOracle(t, page.Alerts, msB, incs)
}

var _ = strings.Contains
var _ = store.HealthHealthy

// TestFeedLoopsSurviveMonitorChurn runs the real engine (1 s interval) over three
// feeds — Contoso's two Sentinel workspaces in one Clarion workspace, and
// the first of them again in a second Clarion workspace — while monitors
// are added, edited, disabled and deleted every few tens of milliseconds
// (each a reload, restarting loops whose polls are in flight: queries are
// slowed down) and incidents arrive. No API call may hang (no deadlock in
// reconcile), the engine must stop when asked, and every incident must be
// exactly one alert in each Clarion workspace whose catch-all monitor
// watches its Sentinel workspace.
func TestFeedLoopsSurviveMonitorChurn(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real engine for several seconds")
	}
	t.Parallel()
	for _, replicas := range []int{1, 2} {
		t.Run(fmt.Sprint(replicas, " replicas"), func(t *testing.T) {
			t.Parallel()
			runLoopChurn(t, replicas)
		})
	}
}

func runLoopChurn(t *testing.T, replicas int) {
	e := setup(t, envOpts{realClock: true, interval: time.Second, pageSize: 3, lookback: 20 * time.Second})
	e.connect()
	_, tokB, err := e.app.CreateWorkspace(t.Context(), "Second SOC")
	if err != nil {
		t.Fatal(err)
	}
	if err := demo.Connect(t.Context(), e.url, tokB, ""); err != nil {
		t.Fatal(err)
	}
	e.addMonitor(map[string]any{"name": "all 1"})
	e.addMonitor(map[string]any{"name": "all 2", "workspace_id": emulator.ContosoWorkspace2ID})
	if code := doAs(t, e.url, tokB, "POST", "/api/v1/monitors", map[string]any{"name": "all b", "workspace_id": emulator.ContosoWorkspaceID}, nil); code != 201 {
		t.Fatalf("HTTP %d", code)
	}
	created := time.Now().UTC().Add(time.Millisecond)
	e.emu.SetFault(emulator.Fault{Kind: emulator.FaultDelay, Target: emulator.ToolQueryLake, Delay: 150 * time.Millisecond})

	ctx, cancel := context.WithCancel(t.Context())
	engDone := make(chan error, 1)
	go func() { engDone <- e.app.Engine.Run(ctx) }()
	if replicas > 1 {
		// A second replica over the same store: the claims split the feeds'
		// monitors between the two.
		// It hears of changes by re-reading the store often.
		eng2, _ := e.engine(monitor.Config{Owner: "replica-2", Interval: time.Second, PageSize: 3, Lookback: 20 * time.Second,
			ReconcileEvery: 200 * time.Millisecond})
		done2 := make(chan error, 1)
		go func() { done2 <- eng2.Run(ctx) }()
		defer func() { cancel(); <-done2 }()
	}
	stopped := false
	defer func() {
		if !stopped {
			cancel()
			<-engDone
		}
	}()

	// Churn: API calls, each watched for a hang.
	churnDone := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		rng := rand.New(rand.NewPCG(1, 2))
		type churned struct{ id, tok string }
		var live []churned
		i := 0
		for {
			select {
			case <-churnDone:
				return
			case <-time.After(time.Duration(20+rng.IntN(60)) * time.Millisecond):
			}
			i++
			start := time.Now()
			tok := []string{e.token, tokB}[rng.IntN(2)]
			ws := []string{emulator.ContosoWorkspaceID, emulator.ContosoWorkspace2ID}[rng.IntN(2)]
			if tok == tokB {
				ws = emulator.ContosoWorkspaceID
			}
			switch op := rng.IntN(4); {
			case op == 0 || len(live) == 0:
				var mv api.MonitorView
				body := map[string]any{"name": fmt.Sprintf("churn %d", i), "workspace_id": ws, "severities": []string{"high"}}
				if code := doAs(t, e.url, tok, "POST", "/api/v1/monitors", body, &mv); code == 201 {
					live = append(live, churned{mv.ID, tok})
				}
			case op == 1:
				c := live[rng.IntN(len(live))]
				doAs(t, e.url, c.tok, "PATCH", "/api/v1/monitors/"+c.id, map[string]any{"severities": []string{"low", "medium"}, "search": fmt.Sprint(i)}, nil)
			case op == 2:
				c := live[rng.IntN(len(live))]
				doAs(t, e.url, c.tok, "PATCH", "/api/v1/monitors/"+c.id, map[string]any{"enabled": rng.IntN(2) == 0}, nil)
			default:
				k := rng.IntN(len(live))
				doAs(t, e.url, live[k].tok, "DELETE", "/api/v1/monitors/"+live[k].id, nil, nil)
				live = slices.Delete(live, k, k+1)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("an API call took %v: the engine's reconcile blocks the API", d)
			}
		}
	})

	want1, want2 := map[string]bool{}, map[string]bool{}
	rng := rand.New(rand.NewPCG(5, 6))
	for n := range 300 {
		name := fmt.Sprintf("c4a50000-0000-4000-8000-%012d", n)
		now := time.Now().UTC()
		c := now.Add(-time.Duration(rng.IntN(1500)) * time.Millisecond)
		if c.Before(created) {
			c = created
		}
		ws := emulator.ContosoWorkspaceID
		if rng.IntN(3) == 0 {
			ws = emulator.ContosoWorkspace2ID
			want2[name] = true
		} else {
			want1[name] = true
		}
		row := emulator.Row{"IncidentName": name, "Title": "churn " + name, "Severity": []string{"High", "Low"}[rng.IntN(2)],
			"CreatedTime": c, "LastModifiedTime": c}
		if _, err := e.emu.AddIncidents(emulator.ContosoTenantID, ws, []emulator.Row{row}, now.Add(time.Duration(rng.IntN(2000))*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		if n%10 == 9 {
			time.Sleep(100 * time.Millisecond)
		}
	}
	close(churnDone)
	wg.Wait()

	countsB := func() map[string]int { return e.alertCountsAs(tokB) }
	deadline := time.Now().Add(30 * time.Second)
	var gotA, gotB map[string]int
	for {
		gotA, gotB = e.alertCounts(), countsB()
		if len(gotA) >= len(want1)+len(want2) && len(gotB) >= len(want1) || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	all := maps.Clone(want1)
	maps.Copy(all, want2)
	checkExactlyOnce(t, "workspace A (both Sentinel workspaces)", all, gotA)
	checkExactlyOnce(t, "workspace B (first Sentinel workspace)", want1, gotB)

	cancel()
	select {
	case <-engDone:
		stopped = true
	case <-time.After(15 * time.Second):
		t.Fatal("the engine did not stop within 15 s of its context ending")
	}
}
