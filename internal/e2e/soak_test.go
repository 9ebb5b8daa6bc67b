package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/clarion/sentinel/internal/api"
	"github.com/clarion/sentinel/internal/demo"
	"github.com/clarion/sentinel/internal/emulator"
)

// TestSoakRandomFaultsLoseAndDuplicateNothing runs the real engine loops
// (1 s interval) over two tenants and several monitors while incidents
// arrive — some visible late, some updated — and the emulator answers with
// random faults: 429, 5xx, slow answers, truncated bodies, on queries and
// token refreshes. At the end every incident is an alert exactly once per
// Clarion workspace (issue 3, soak).
func TestSoakRandomFaultsLoseAndDuplicateNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("soak test: skipped with -short")
	}
	t.Parallel()
	// Access tokens live 62 s and are renewed a minute before they expire:
	// every query needs a refresh, so token-endpoint faults are hit too.
	// The look-back covers the longest visibility delay (3 s) with room.
	e := setup(t, envOpts{realClock: true, interval: time.Second, pageSize: 50, lookback: 20 * time.Second,
		edit: func(c *emulator.Config) { c.AccessTokenTTL = 62 * time.Second }})
	e.connect()
	_, tokB, err := e.app.CreateWorkspace(t.Context(), "Fabrikam SOC")
	if err != nil {
		t.Fatal(err)
	}
	if err := demo.Connect(t.Context(), e.url, tokB, emulator.FabrikamAdminUsername); err != nil {
		t.Fatal(err)
	}
	e.addMonitor(map[string]any{"name": "contoso all"})
	e.addMonitor(map[string]any{"name": "contoso high", "severities": []string{"high"}})
	e.addMonitor(map[string]any{"name": "contoso eu", "workspace_id": emulator.ContosoWorkspace2ID})
	var mb api.MonitorView
	if code := doAs(t, e.url, tokB, "POST", "/api/v1/monitors", map[string]any{"name": "fabrikam", "workspace_id": emulator.FabrikamWorkspaceID}, &mb); code != 201 {
		t.Fatalf("HTTP %d", code)
	}
	// Monitors are forward-only: every incident below is created after them.
	monitorsCreated := time.Now().UTC().Add(time.Millisecond)
	ctx, cancel := context.WithCancel(t.Context())
	engDone := make(chan error, 1)
	go func() { engDone <- e.app.Engine.Run(ctx) }()
	defer func() { cancel(); <-engDone }()

	type target struct{ tenant, workspace string }
	targets := []target{
		{emulator.ContosoTenantID, emulator.ContosoWorkspaceID},
		{emulator.ContosoTenantID, emulator.ContosoWorkspace2ID},
		{emulator.FabrikamTenantID, emulator.FabrikamWorkspaceID},
	}
	wantA, wantB := map[string]bool{}, map[string]bool{}
	rng := rand.New(rand.NewPCG(7, 11))

	// Faults: a random one every 300 ms, each good for one request.
	faultsDone := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		kinds := []emulator.Fault{
			{Kind: emulator.FaultThrottle, Target: emulator.ToolQueryLake, RetryAfter: time.Second},
			{Kind: emulator.FaultServerError, Target: emulator.ToolQueryLake, Status: 503},
			{Kind: emulator.FaultServerError, Target: emulator.ToolQueryLake, Status: 500},
			{Kind: emulator.FaultDelay, Target: emulator.ToolQueryLake, Delay: 400 * time.Millisecond},
			{Kind: emulator.FaultTruncate, Target: emulator.ToolQueryLake},
			{Kind: emulator.FaultServerError, Target: emulator.EndpointToken, Status: 503},
		}
		frng := rand.New(rand.NewPCG(3, 5))
		tick := time.NewTicker(300 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-faultsDone:
				return
			case <-tick.C:
			}
			// One pending fault at a time, replaced every tick: Microsoft has
			// bad moments, not a permanent outage.
			e.emu.ClearFaults()
			f := kinds[frng.IntN(len(kinds))]
			f.Count = 1
			f.TenantID = []string{emulator.ContosoTenantID, emulator.FabrikamTenantID}[frng.IntN(2)]
			e.emu.SetFault(f)
		}
	})

	const batches, perBatch = 40, 75 // 3,000 incidents
	n := 0
	for b := range batches {
		for range perBatch {
			tg := targets[rng.IntN(len(targets))]
			name := fmt.Sprintf("50a50000-0000-4000-8000-%012d", n)
			n++
			now := time.Now().UTC()
			// Created up to 2 s before it is added (never before the monitors).
			created := now.Add(-time.Duration(rng.IntN(2000)) * time.Millisecond)
			if created.Before(monitorsCreated) {
				created = monitorsCreated
			}
			visible := now.Add(time.Duration(rng.IntN(3000)) * time.Millisecond) // ingestion delay
			sev := []string{"High", "Medium", "Low", "Informational"}[rng.IntN(4)]
			row := emulator.Row{"IncidentName": name, "Title": "soak " + name, "Severity": sev, "Status": "New",
				"CreatedTime": created, "LastModifiedTime": created}
			if _, err := e.emu.AddIncidents(tg.tenant, tg.workspace, []emulator.Row{row}, visible); err != nil {
				t.Fatal(err)
			}
			if rng.IntN(4) == 0 { // updated later: a new row for the same incident
				if _, err := e.emu.UpdateIncident(tg.tenant, tg.workspace, name,
					emulator.Row{"Status": "Active", "LastModifiedTime": created.Add(time.Second)}, visible.Add(time.Second)); err != nil {
					t.Fatal(err)
				}
			}
			if tg.tenant == emulator.ContosoTenantID {
				wantA[name] = true
			} else {
				wantB[name] = true
			}
		}
		_ = b
		time.Sleep(100 * time.Millisecond) // incidents arrive over time
	}

	countsB := func() map[string]int { return e.alertCountsAs(tokB) }
	deadline := time.Now().Add(90 * time.Second)
	var gotA, gotB map[string]int
	for {
		gotA, gotB = e.alertCounts(), countsB()
		if len(gotA) >= len(wantA) && len(gotB) >= len(wantB) || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	close(faultsDone) // faults went on until here: recovery happened under fire
	wg.Wait()
	e.emu.ClearFaults()
	checkExactlyOnce(t, "Contoso workspace", wantA, gotA)
	checkExactlyOnce(t, "Fabrikam workspace", wantB, gotB)
	st := e.emu.Stats()
	faulted := 0
	for _, tn := range []string{emulator.ContosoTenantID, emulator.FabrikamTenantID} {
		for code, c := range st.Tenant(tn).Errors {
			if code == "429" || code[0] == '5' {
				faulted += c.Count
			}
		}
	}
	if faulted < 3 {
		t.Fatalf("only %d faulted answers: the soak did not exercise the faults", faulted)
	}
	t.Logf("soak: %d incidents; emulator answered %d requests, errors %v / %v", n, st.Total.Count,
		st.Tenant(emulator.ContosoTenantID).Errors, st.Tenant(emulator.FabrikamTenantID).Errors)
}

// checkExactlyOnce reports, under name, the incidents of want that have no
// alert or more than one in got (alerts per incident id), and the alerts of
// incidents not in want.
func checkExactlyOnce(t *testing.T, name string, want map[string]bool, got map[string]int) {
	t.Helper()
	missing, dup, extra := 0, 0, 0
	for id := range want {
		switch got[id] {
		case 0:
			missing++
		case 1:
		default:
			dup++
		}
	}
	for id := range got {
		if !want[id] {
			extra++
		}
	}
	if missing+dup+extra != 0 {
		t.Errorf("%s: %d incidents, %d alerts: %d missing, %d duplicated, %d from elsewhere", name, len(want), len(got), missing, dup, extra)
	}
}
