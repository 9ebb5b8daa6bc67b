package bench

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Verdict is one target checked against a figure.
type Verdict struct {
	Target string // what is promised
	Figure string // what was measured
	Pass   bool
	Why    string // for a miss: what bounds it
}

func secs(d time.Duration) string {
	switch {
	case d == 0:
		return "0 s"
	case d < time.Millisecond && d > -time.Millisecond:
		return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond))
	case d < 10*time.Millisecond && d > -10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	case d < time.Second && d > -time.Second:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func mb(b uint64) string { return fmt.Sprintf("%.0f MB", float64(b)/(1<<20)) }

// coreShare is CPU time over wall time, in percent of one core.
func coreShare(cpu, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	return 100 * cpu.Seconds() / wall.Seconds()
}

func perPoll(cpu time.Duration, polls int) time.Duration {
	if polls == 0 {
		return 0
	}
	return cpu / time.Duration(polls)
}

// perInterval scales a count over the window to one interval.
func perInterval(n int, window, interval time.Duration) float64 {
	if window <= 0 {
		return 0
	}
	return float64(n) * interval.Seconds() / window.Seconds()
}

func (r *StoreResult) print(out io.Writer, o Options) {
	fmt.Fprintf(out, "== %s ==\n", r.Name)
	fmt.Fprintf(out, "connect: %d Clarion workspaces connected through the consent flow in %s (%.0f per second, %d at a time)\n",
		r.Connected, r.Connect.Round(100*time.Millisecond), rate(r.Connected, r.Connect), o.ConnectWorkers)
	t := r.Tools
	fmt.Fprintf(out, "tools (%s, %d paired calls): direct p50 %s p99 %s; through Clarion p50 %s p99 %s; added p50 %s p99 %s\n",
		t.Tool, t.Calls, secs(t.Direct.P50), secs(t.Direct.P99), secs(t.Via.P50), secs(t.Via.P99), secs(t.Added.P50), secs(t.Added.P99))
	for _, lv := range r.Levels {
		fmt.Fprintf(out, "scale %d monitors (%d tenants, %d Sentinel workspaces, monitors inserted in %s), interval %s, measured over %s:\n",
			lv.Monitors, lv.Tenants, lv.SentinelWorkspaces, lv.Create.Round(100*time.Millisecond), o.Interval, lv.Window)
		fmt.Fprintf(out, "  polls %d; schedule lag p50 %s p99 %s max %s (%d polls due in the window); of which the loop's wake-up p50 %s p99 %s, the rest waiting for the lease claim\n",
			lv.Polls, secs(lv.Lag.P50), secs(lv.Lag.P99), secs(lv.Lag.Max), lv.Lag.N, secs(lv.LagWake.P50), secs(lv.LagWake.P99))
		fmt.Fprintf(out, "  CPU %.1f %% of one core, %s per poll; RSS %s (peak %s): Go heap %s, %d goroutines with %s of stacks; emulator CPU %.1f %% of one core\n",
			coreShare(lv.CPU, lv.Window), secs(perPoll(lv.CPU, lv.Polls)), mb(lv.RSS), mb(lv.PeakRSS), mb(lv.Heap), lv.Goroutines, mb(lv.Stacks), coreShare(lv.EmuCPU, lv.Window))
		if len(lv.Failures) > 0 {
			fmt.Fprintf(out, "  failed polls in the window: %s\n", counts(lv.Failures))
		}
		fmt.Fprintf(out, "  upstream per monitor per interval: %.2f HTTP requests, %.2f query_lake; query_lake per Sentinel workspace per interval %.2f; token requests %d\n",
			perInterval(lv.Requests, lv.Window, o.Interval)/float64(lv.Monitors),
			perInterval(lv.Queries, lv.Window, o.Interval)/float64(lv.Monitors),
			perInterval(lv.Queries, lv.Window, o.Interval)/float64(max(lv.SentinelWorkspaces, 1)), lv.TokenRequests)
	}
	l := r.Latency
	fmt.Fprintf(out, "latency visible → alert committed (%d of %d incidents): p50 %s (%.2f × interval) p99 %s (%.2f × interval) max %s\n",
		l.Committed, l.Incidents, secs(l.Latency.P50), ratio(l.Latency.P50, l.Interval), secs(l.Latency.P99), ratio(l.Latency.P99, l.Interval), secs(l.Latency.Max))
	k := r.Tokens
	fmt.Fprintf(out, "token refreshes, scale run (tokens live 1 h): %d connections, %d refresh grants, at most %d per connection\n",
		k.ScaleConnections, k.ScaleRefreshes, k.ScaleMax)
	fmt.Fprintf(out, "token refreshes, %d connections × 2 monitors polling every second for %s with %s tokens (renewed 60 s before they end): %d grants; mean %s between refreshes of a connection (shortest %s)\n",
		k.Connections, k.Run, k.Lifetime, k.Refreshes, secs(k.MeanSpacing), secs(k.MinSpacing))
	fmt.Fprintf(out, "  → %.2f refreshes per connection per token lifetime, counting the lifetime as the %s a token is used; with Microsoft's 1 h tokens %.2f refreshes per connection per hour\n",
		k.PerLifetime(), k.Lifetime-time.Minute, k.PerLifetime()*3600/(3600-60))
	b := r.Burst
	fmt.Fprintf(out, "burst %d incidents in one workspace: all alerts after %s = %.0f alerts/s (%d pages; CPU per alert: Clarion %s, the lake %s)\n",
		b.Incidents, secs(b.Elapsed), b.Rate(), b.Pages, secs(perPoll(b.CPU, b.Incidents)), secs(perPoll(b.LakeCPU, b.Incidents)))
	fmt.Fprintf(out, "  raw insert of the same rows (store.CommitPage, %d rows per transaction): %.0f rows/s, CPU %s per row → burst at %.0f %% of it (by CPU per row: %.0f %%)\n",
		b.RawBatch, b.RawRate(), secs(perPoll(b.RawCPU, b.RawRows)), 100*b.Rate()/max(b.RawRate(), 1e-9), 100*b.CPUShare())
	fmt.Fprintf(out, "  memory: Go heap %s before, peak %s (+%s); RSS %s before, peak %s; the backlog's payloads are %s\n",
		mb(b.BaseHeap), mb(b.PeakHeap), mb(sub(b.PeakHeap, b.BaseHeap)), mb(b.BaseRSS), mb(b.PeakRSS), mb(b.Backlog))
	fmt.Fprintf(out, "targets (%s, at %d monitors):\n", r.Name, r.top().Monitors)
	for _, v := range r.Verdicts(o) {
		mark := "PASS"
		if !v.Pass {
			mark = "MISS"
		}
		fmt.Fprintf(out, "  %s  %-58s %s\n", mark, v.Target, v.Figure)
		if !v.Pass && v.Why != "" {
			fmt.Fprintf(out, "        why: %s\n", v.Why)
		}
	}
	fmt.Fprintln(out)
}

// counts renders a count per code, most frequent first.
func counts(m map[string]int) string {
	type kv struct {
		k string
		v int
	}
	var l []kv
	for k, v := range m {
		l = append(l, kv{k, v})
	}
	slices.SortFunc(l, func(a, b kv) int { return cmp.Or(b.v-a.v, strings.Compare(a.k, b.k)) })
	var parts []string
	for _, e := range l {
		parts = append(parts, fmt.Sprintf("%s %d", e.k, e.v))
	}
	return strings.Join(parts, ", ")
}

func ratio(d, of time.Duration) float64 {
	if of <= 0 {
		return 0
	}
	return d.Seconds() / of.Seconds()
}

// PerLifetime is the worst connection's refreshes per token lifetime,
// the lifetime counted as the part Clarion uses (it renews a minute
// early): used lifetime over the shortest mean time between refreshes.
func (k TokenResult) PerLifetime() float64 {
	if k.MinSpacing <= 0 {
		return 0
	}
	return (k.Lifetime - time.Minute).Seconds() / k.MinSpacing.Seconds()
}

func sub(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}

func (r *StoreResult) top() LevelResult {
	if len(r.Levels) == 0 {
		return LevelResult{}
	}
	return r.Levels[len(r.Levels)-1]
}

// Verdicts checks the targets against the largest level and the
// other phases.
func (r *StoreResult) Verdicts(o Options) []Verdict {
	lv := r.top()
	var vs []Verdict
	add := func(target, figure string, pass bool, why string) {
		vs = append(vs, Verdict{Target: target, Figure: figure, Pass: pass, Why: why})
	}
	load := loadAverage()

	add("p99 schedule lag ≤ 2 s", secs(lv.Lag.P99), lv.Lag.N > 0 && lv.Lag.P99 <= 2*time.Second,
		fmt.Sprintf("polls start late when the process gets no CPU: load average %.1f on %d cores while measured", load, numCPU()))
	add("RSS ≤ 300 MB", fmt.Sprintf("%s (peak)", mb(lv.PeakRSS)), lv.PeakRSS > 0 && lv.PeakRSS <= 300<<20,
		fmt.Sprintf("%d goroutines (one loop per feed, HTTP and MCP session goroutines per tenant) hold %s of stacks next to a %s heap, and the heap may double between collections (GOGC=100)", lv.Goroutines, mb(lv.Stacks), mb(lv.Heap)))
	idle := coreShare(lv.CPU, lv.Window)
	db := "each statement parsed anew by the SQLite driver"
	if r.Name == "PostgreSQL" {
		db = "each a round trip to PostgreSQL"
	}
	add("idle CPU ≤ 25 % of one core", fmt.Sprintf("%.1f %% (%s per poll)", idle, secs(perPoll(lv.CPU, lv.Polls))), idle <= 25,
		fmt.Sprintf("an idle feed poll claims its monitors' leases, reads the connection row twice (the poll, then the token cache) and writes each monitor's health (%s), and makes one MCP call whose answer is decoded", db))

	perWS := perInterval(lv.Queries, lv.Window, o.Interval) / float64(max(lv.SentinelWorkspaces, 1))
	add("1 query per (tenant, Sentinel workspace) per interval", fmt.Sprintf("%.2f", perWS), perWS >= 0.95 && perWS <= 1.05,
		fmt.Sprintf("the %d monitors of a Sentinel workspace here did not always poll together (a feed's monitors fall apart when they are due at different times: a new or failing monitor, another replica); above 1, some sweeps served only part of a feed",
			max(o.MonitorsPerTenant/o.WorkspacesPerTenant, 1)))

	k := r.Tokens
	add("≤ 1 token refresh per connection per token lifetime",
		fmt.Sprintf("%.2f (worst of %d connections); scale run: at most %d per connection", k.PerLifetime(), k.Connections, k.ScaleMax),
		k.Repeated > 0 && k.PerLifetime() <= 1.05 && k.ScaleMax <= 1, "a connection refreshed before its cached token was due for renewal")

	b := r.Burst
	share := 100 * b.Rate() / max(b.RawRate(), 1e-9)
	add("burst ingest ≥ 50 % of the raw insert rate", fmt.Sprintf("%.0f %% (%.0f of %.0f rows/s)", share, b.Rate(), b.RawRate()), share >= 50,
		fmt.Sprintf("Clarion spends %s of CPU per alert against %s to insert it; the next page is fetched while one commits, and fetching is the slower chain: the lake's own work (%s per incident, on the same cores here) and the MCP SDK's decode of its answer",
			secs(perPoll(b.CPU, b.Incidents)), secs(perPoll(b.RawCPU, b.RawRows)), secs(perPoll(b.LakeCPU, b.Incidents))))
	grow := sub(b.PeakHeap, b.BaseHeap)
	add("burst memory bounded (not the backlog)", fmt.Sprintf("heap +%s for a %s backlog", mb(grow), mb(b.Backlog)),
		b.Backlog > 0 && (grow < b.Backlog/4 || grow < 16<<20), "the heap grew by more than a quarter of the backlog (and by more than 16 MB)")

	l := r.Latency
	add("end-to-end p99 ≤ interval + 1 s", fmt.Sprintf("%s (interval %s)", secs(l.Latency.P99), o.Interval),
		l.Committed == l.Incidents && l.Committed > 0 && l.Latency.P99 <= o.Interval+time.Second,
		strings.TrimSpace(fmt.Sprintf("%d of %d committed; a poll waits up to one interval for its slot, plus its lag and duration", l.Committed, l.Incidents)))
	t := r.Tools
	add("tool proxy overhead p50 ≤ 2 ms", secs(t.Added.P50), t.Calls > 0 && t.Added.P50 <= 2*time.Millisecond,
		"per call Clarion looks up the API token, reads the skill and the connection (two round trips on PostgreSQL), and relays the call over a second MCP session; the audit record is queued, not committed, before it answers")
	return vs
}
