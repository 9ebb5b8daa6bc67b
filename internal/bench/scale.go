package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"runtime"
	"slices"
	"time"

	"github.com/clarion/sentinel/internal/emulator"
	"github.com/clarion/sentinel/internal/emulator/kql"
	"github.com/clarion/sentinel/internal/monitor"
	"github.com/clarion/sentinel/internal/store"
)

// LevelResult is one scale level, measured over one interval.
type LevelResult struct {
	Monitors, Tenants, SentinelWorkspaces int
	Create                                time.Duration // inserting this level's new monitors
	Window                                time.Duration
	Polls                                 int           // polls started in the window
	Lag                                   Dist          // lease taken − due
	LagWake                               Dist          // lease asked for − due: the loop's own lateness
	CPU, EmuCPU                           time.Duration // Clarion's and the emulator's CPU in the window
	RSS, PeakRSS, Heap                    uint64
	Goroutines, Stacks                    uint64
	Requests, Queries, TokenRequests      int            // to Microsoft in the window
	Failures                              map[string]int // failed polls in the window, by error code
}

// LatencyResult is incident visible upstream → alert committed.
type LatencyResult struct {
	Incidents, Committed int
	Latency              Dist
	Interval             time.Duration
}

// TokenResult counts refresh grants per connection (per Entra sign-in).
type TokenResult struct {
	Connections      int
	Refreshes        int
	MaxPerConnection int
	Repeated         int           // connections refreshed at least twice
	MinSpacing       time.Duration // shortest mean time between refreshes of one connection
	MeanSpacing      time.Duration
	Lifetime         time.Duration
	Run              time.Duration // how long the connections polled
	// The scale run's connections, with hour-long tokens.
	ScaleConnections, ScaleRefreshes, ScaleMax int
}

func runScale(ctx context.Context, o Options, emu *emuProcess, db *database, res *StoreResult) error {
	c, err := startClarion(ctx, db.dsnA, db.dirA, emu.URL, emu.URL+"/mcp", o.Interval, o.Logger)
	if err != nil {
		return err
	}
	defer c.close()
	mem := startMemSampler(250 * time.Millisecond)
	defer mem.close()

	// Token refreshes are counted per sign-in over this store's run only.
	if err := deleteStats(ctx, emu.URL); err != nil {
		return err
	}
	// Every tenant is connected before any monitor exists: a connect wakes
	// the monitors of its workspace, and with them present the connects
	// would measure the store's contention rather than set the stage.
	progress(o, "%s: connecting %d tenants through the consent flow", res.Name, o.tenants())
	t0 := time.Now()
	tenants, err := connectTenants(ctx, o, c, 0, o.tenants())
	if err != nil {
		return err
	}
	res.Connect, res.Connected = time.Since(t0), len(tenants)
	progress(o, "%s: warming %d connections (token, MCP session)", res.Name, len(tenants))
	if err := warmTenants(ctx, o, c, tenants); err != nil {
		return err
	}
	progress(o, "%s: tools: %d paired calls", res.Name, o.ToolCalls)
	res.Tools, err = measureTools(ctx, o, emu, c, tenants[0])
	if err != nil {
		return fmt.Errorf("tools: %w", err)
	}

	created := 0
	var all []store.Monitor // every monitor
	for li, n := range o.Monitors {
		last := li == len(o.Monitors)-1
		// The largest level, which the targets are about, is measured over
		// a whole interval (every monitor polls once in it); the smaller
		// ones over half of one, to keep the run short, unless they are
		// so small that half an interval may hold no feed's slot at all.
		// Counts are scaled to one interval.
		lv := LevelResult{Monitors: n, Window: o.Interval}
		if !last && n >= 1000 {
			lv.Window = o.Interval / 2
		}
		lv.Tenants = (n + o.MonitorsPerTenant - 1) / o.MonitorsPerTenant
		from := (created + o.MonitorsPerTenant - 1) / o.MonitorsPerTenant
		progress(o, "%s: level %d monitors: creating %d monitors", res.Name, n, n-created)
		t0 := time.Now()
		ms, err := createMonitors(ctx, o, c, tenants[from:lv.Tenants], from, n-created, o.Interval)
		if err != nil {
			return fmt.Errorf("create monitors: %w", err)
		}
		lv.Create = time.Since(t0)
		created += len(ms)
		all = append(all, ms...)
		lv.SentinelWorkspaces = min(lv.Tenants*o.WorkspacesPerTenant, created)
		c.eng.Reload()

		// Monitors whose first slot passed while they were being created
		// poll as soon as their loops start: let that catch-up end before
		// the window, which then holds exactly one slot of every monitor.
		tEnd := time.Now().Add(500 * time.Millisecond)
		late := map[string]bool{}
		for _, m := range ms {
			if m.NextPollAt.Before(tEnd) {
				late[m.ID] = true
			}
		}
		if _, err := waitFor(ctx, time.Now().Add(o.Interval+30*time.Second), 100*time.Millisecond,
			func() bool { return c.rec.polled(late) >= len(late) }); err != nil {
			return err
		}

		w0 := time.Now().Add(time.Second)
		w1 := w0.Add(lv.Window)
		var lat []latencyIncident
		if last {
			if lat, err = addLatencyIncidents(ctx, o, emu, c, lv.Tenants, w0, ms[len(ms)-1].CreatedAt); err != nil {
				return fmt.Errorf("latency incidents: %w", err)
			}
		}
		progress(o, "%s: level %d monitors: measuring %s (interval %s)", res.Name, n, lv.Window, o.Interval)
		if err := sleepUntil(ctx, w0); err != nil {
			return err
		}
		cpu0, ecpu0 := cpuSelf(), cpuOf(emu.Pid())
		s0, err := emuStats(ctx, emu.URL)
		if err != nil {
			return err
		}
		mem.reset()
		if err := sleepUntil(ctx, w1); err != nil {
			return err
		}
		lv.CPU, lv.EmuCPU = cpuSelf()-cpu0, cpuOf(emu.Pid())-ecpu0
		s1, err := emuStats(ctx, emu.URL)
		if err != nil {
			return err
		}
		lv.PeakRSS, _ = mem.peaks()
		lv.RSS, _ = memOf("self")
		lv.Heap = heapInUse()
		lv.Goroutines, lv.Stacks = goStacks()
		r0, q0, t0n := requestTotals(s0)
		r1, q1, t1n := requestTotals(s1)
		lv.Requests, lv.Queries, lv.TokenRequests = r1-r0, q1-q0, t1n-t0n
		lv.Polls = c.rec.claimsAt(w0, w1)
		lv.Failures = c.rec.failuresAt(w0, w1)
		// Polls due near the window's end may start after it: wait for
		// every poll due in the window (a monitor's slot in it), or 30 s.
		due := 0
		for _, m := range all {
			if monitor.NextSlot(o.Interval, m, w0.Add(-time.Nanosecond)).Before(w1) {
				due++
			}
		}
		if _, err := waitFor(ctx, time.Now().Add(30*time.Second), 100*time.Millisecond,
			func() bool { return len(c.rec.claimsDue(w0, w1)) >= due }); err != nil {
			return err
		}
		var lags, wakes []time.Duration
		for _, cl := range c.rec.claimsDue(w0, w1) {
			lags = append(lags, cl.At.Sub(cl.Due))
			wakes = append(wakes, cl.Start.Sub(cl.Due))
		}
		lv.Lag, lv.LagWake = dist(lags), dist(wakes)
		res.Levels = append(res.Levels, lv)

		if last {
			progress(o, "%s: waiting for the latency incidents' alerts", res.Name)
			res.Latency, err = collectLatency(ctx, o, c, lat)
			if err != nil {
				return err
			}
		}
	}

	st, err := emuStats(ctx, emu.URL)
	if err != nil {
		return err
	}
	// With Microsoft's hour-long tokens and a run shorter than that, each
	// connection refreshes once: when it was warmed.
	scale := tokenResult(st, len(tenants), time.Hour)
	res.Tokens.ScaleConnections, res.Tokens.ScaleRefreshes, res.Tokens.ScaleMax = scale.Connections, scale.Refreshes, scale.MaxPerConnection
	c.stopEngine()
	runtime.GC()
	return nil
}

// latencyIncident is an incident that becomes visible at Visible.
type latencyIncident struct {
	Name    string
	Visible time.Time
}

// addLatencyIncidents adds LatencyIncidents incidents to the Sentinel
// workspaces of the first tenants, each visible at a random time in the
// first quarter of the window (at most 5 s in), created up to 2 s before
// it is visible (Sentinel's ingestion delay) but not before notBefore, when
// the last monitors were created: polling is forward-only.
func addLatencyIncidents(ctx context.Context, o Options, emu *emuProcess, c *clarion, tenants int, w0, notBefore time.Time) ([]latencyIncident, error) {
	rng := rand.New(rand.NewPCG(42, uint64(w0.UnixNano())))
	spread := min(5*time.Second, o.Interval/4)
	var out []latencyIncident
	var names []string
	for i := range o.LatencyIncidents {
		t := rng.IntN(min(10, tenants))
		ws := workspaceID(t, rng.IntN(o.WorkspacesPerTenant))
		visible := w0.Add(time.Duration(rng.Int64N(int64(spread) + 1))).UTC()
		created := visible.Add(-time.Duration(rng.Int64N(int64(min(2*time.Second, o.Interval/2)) + 1)))
		if !created.After(notBefore) {
			created = notBefore.Add(time.Millisecond)
		}
		name := fmt.Sprintf("be5a0000-0000-4000-8000-%012d", time.Now().UnixNano()%1e9*1000+int64(i))
		row := map[string]any{"IncidentName": name, "Title": fmt.Sprintf("Latency probe %d", i), "Severity": "High", "Status": "New",
			"CreatedTime": kql.FormatDatetime(created), "LastModifiedTime": kql.FormatDatetime(created)}
		u := fmt.Sprintf("%s/_emulator/tenants/%s/workspaces/%s/incidents?visible_at=%s", emu.URL, tenantID(t), ws,
			url.QueryEscape(visible.Format(time.RFC3339Nano)))
		if err := postJSON(ctx, u, map[string]any{"rows": []any{row}}, 201); err != nil {
			return nil, err
		}
		out = append(out, latencyIncident{Name: name, Visible: visible})
		names = append(names, name)
	}
	c.rec.trackIncidents(names)
	return out, nil
}

// collectLatency waits until every latency incident is an alert (at most
// two intervals after the last one is visible, plus 30 s).
func collectLatency(ctx context.Context, o Options, c *clarion, lat []latencyIncident) (LatencyResult, error) {
	r := LatencyResult{Incidents: len(lat), Interval: o.Interval}
	var lastVisible time.Time
	for _, l := range lat {
		if l.Visible.After(lastVisible) {
			lastVisible = l.Visible
		}
	}
	done := func() bool {
		for _, l := range lat {
			if _, ok := c.rec.committed(l.Name); !ok {
				return false
			}
		}
		return true
	}
	if _, err := waitFor(ctx, lastVisible.Add(2*o.Interval+30*time.Second), 100*time.Millisecond, done); err != nil {
		return r, err
	}
	var ds []time.Duration
	for _, l := range lat {
		if at, ok := c.rec.committed(l.Name); ok {
			ds = append(ds, at.Sub(l.Visible))
		} else {
			progress(o, "latency incident %s (visible %s) is not an alert", l.Name, l.Visible.Format(time.RFC3339Nano))
		}
	}
	r.Committed = len(ds)
	r.Latency = dist(ds)
	return r, nil
}

// tokenResult reads the refresh grants of each connection (one Entra
// sign-in: the emulator counts them by the sign-in's sid).
func tokenResult(st emulator.Stats, tenants int, lifetime time.Duration) TokenResult {
	r := TokenResult{Lifetime: lifetime}
	var sum time.Duration
	for i := range tenants {
		for _, c := range st.Tenant(tenantID(i)).Sessions {
			r.Connections++
			r.Refreshes += c.Count
			r.MaxPerConnection = max(r.MaxPerConnection, c.Count)
			if c.Count < 2 {
				continue
			}
			r.Repeated++
			sp := c.Last.Sub(c.First) / time.Duration(c.Count-1)
			sum += sp
			if r.MinSpacing == 0 || sp < r.MinSpacing {
				r.MinSpacing = sp
			}
		}
	}
	if r.Repeated > 0 {
		r.MeanSpacing = sum / time.Duration(r.Repeated)
	}
	return r
}

// Dist is a latency distribution.
type Dist struct {
	N             int
	P50, P99, Max time.Duration
}

func dist(ds []time.Duration) Dist {
	if len(ds) == 0 {
		return Dist{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	q := func(p float64) time.Duration {
		i := int(p*float64(len(s)) + 0.5)
		return s[min(max(i-1, 0), len(s)-1)]
	}
	return Dist{N: len(s), P50: q(0.50), P99: q(0.99), Max: s[len(s)-1]}
}
