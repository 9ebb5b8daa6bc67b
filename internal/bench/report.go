package bench

import (
	"fmt"
	"io"
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
	t := r.Tools
	fmt.Fprintf(out, "tools (%s, %d paired calls): direct p50 %s p99 %s; through Clarion p50 %s p99 %s; added p50 %s p99 %s\n",
		t.Tool, t.Calls, secs(t.Direct.P50), secs(t.Direct.P99), secs(t.Via.P50), secs(t.Via.P99), secs(t.Added.P50), secs(t.Added.P99))
	for _, lv := range r.Levels {
		fmt.Fprintf(out, "scale %d monitors (%d tenants connected in %s, %d Sentinel workspaces, monitors inserted in %s), interval %s, measured over %s:\n",
			lv.Monitors, lv.Tenants, lv.Connect.Round(100*time.Millisecond), lv.SentinelWorkspaces, lv.Create.Round(100*time.Millisecond), o.Interval, lv.Window)
		fmt.Fprintf(out, "  polls %d; schedule lag p50 %s p99 %s max %s (%d polls due in the window); of which the loop's wake-up p50 %s p99 %s, the rest waiting for the lease claim\n",
			lv.Polls, secs(lv.Lag.P50), secs(lv.Lag.P99), secs(lv.Lag.Max), lv.Lag.N, secs(lv.LagWake.P50), secs(lv.LagWake.P99))
		fmt.Fprintf(out, "  CPU %.1f %% of one core, %s per poll; RSS %s (peak %s), Go heap %s; emulator CPU %.1f %% of one core\n",
			coreShare(lv.CPU, lv.Window), secs(perPoll(lv.CPU, lv.Polls)), mb(lv.RSS), mb(lv.PeakRSS), mb(lv.Heap), coreShare(lv.EmuCPU, lv.Window))
		fmt.Fprintf(out, "  upstream per monitor per interval: %.2f HTTP requests, %.2f query_lake; query_lake per Sentinel workspace per interval %.2f; token requests %d\n",
			perInterval(lv.Requests, lv.Window, o.Interval)/float64(lv.Monitors),
			perInterval(lv.Queries, lv.Window, o.Interval)/float64(lv.Monitors),
			perInterval(lv.Queries, lv.Window, o.Interval)/float64(max(lv.SentinelWorkspaces, 1)), lv.TokenRequests)
	}
	l := r.Latency
	fmt.Fprintf(out, "latency visible → alert committed (%d of %d incidents): p50 %s (%.2f × interval) p99 %s (%.2f × interval) max %s\n",
		l.Committed, l.Incidents, secs(l.Latency.P50), ratio(l.Latency.P50, l.Interval), secs(l.Latency.P99), ratio(l.Latency.P99, l.Interval), secs(l.Latency.Max))
	k := r.Tokens
	fmt.Fprintf(out, "token refreshes: %d connections, %d refresh grants; %d connections refreshed more than once, mean %s between refreshes (shortest %s); token lifetime %s, used until 60 s before it ends\n",
		k.Connections, k.Refreshes, k.Repeated, secs(k.MeanSpacing), secs(k.MinSpacing), k.Lifetime)
	fmt.Fprintf(out, "  → %.2f refreshes per connection per hour at this lifetime; %.2f per hour with Microsoft's 1 h tokens\n",
		perHour(k.MeanSpacing), 3600/(3600-60.0))
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

func ratio(d, of time.Duration) float64 {
	if of <= 0 {
		return 0
	}
	return d.Seconds() / of.Seconds()
}

func perHour(spacing time.Duration) float64 {
	if spacing <= 0 {
		return 0
	}
	return time.Hour.Seconds() / spacing.Seconds()
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
		"one goroutine, timer and lease state per monitor plus one MCP session per tenant; see BENCHMARKS.md")
	idle := coreShare(lv.CPU, lv.Window)
	add("idle CPU ≤ 25 % of one core", fmt.Sprintf("%.1f %% (%s per poll)", idle, secs(perPoll(lv.CPU, lv.Polls))), idle <= 25,
		"every monitor runs its own query each interval: claim, two connection reads, MCP call, parse, commit and finish per poll")

	perWS := perInterval(lv.Queries, lv.Window, o.Interval) / float64(max(lv.SentinelWorkspaces, 1))
	add("1 query per (tenant, Sentinel workspace) per interval", fmt.Sprintf("%.2f", perWS), perWS >= 0.95 && perWS <= 1.05,
		fmt.Sprintf("each monitor queries on its own; %d monitors share each Sentinel workspace here, so each workspace is queried that many times",
			max(o.MonitorsPerTenant/o.WorkspacesPerTenant, 1)))

	k := r.Tokens
	perLifetime := 0.0
	if k.MinSpacing > 0 {
		perLifetime = (k.Lifetime - time.Minute).Seconds() / k.MinSpacing.Seconds()
	}
	add("≤ 1 token refresh per connection per token lifetime",
		fmt.Sprintf("%.2f (worst connection; %d of %d refreshed twice or more)", perLifetime, k.Repeated, k.Connections),
		k.Connections > 0 && perLifetime <= 1.05, "a connection refreshed before its cached token was due for renewal")

	b := r.Burst
	share := 100 * b.Rate() / max(b.RawRate(), 1e-9)
	add("burst ingest ≥ 50 % of the raw insert rate", fmt.Sprintf("%.0f %% (%.0f of %.0f rows/s)", share, b.Rate(), b.RawRate()), share >= 50,
		"each page is fetched, parsed and mapped before its commit, one page at a time per monitor: the fetch and the commit never overlap")
	grow := sub(b.PeakHeap, b.BaseHeap)
	add("burst memory bounded (not the backlog)", fmt.Sprintf("heap +%s for a %s backlog", mb(grow), mb(b.Backlog)),
		b.Backlog > 0 && (grow < b.Backlog/4 || grow < 16<<20), "the heap grew by more than a quarter of the backlog (and by more than 16 MB)")

	l := r.Latency
	add("end-to-end p99 ≤ interval + 1 s", fmt.Sprintf("%s (interval %s)", secs(l.Latency.P99), o.Interval),
		l.Committed == l.Incidents && l.Committed > 0 && l.Latency.P99 <= o.Interval+time.Second,
		strings.TrimSpace(fmt.Sprintf("%d of %d committed; a poll waits up to one interval for its slot, plus its lag and duration", l.Committed, l.Incidents)))
	t := r.Tools
	add("tool proxy overhead p50 ≤ 2 ms", secs(t.Added.P50), t.Calls > 0 && t.Added.P50 <= 2*time.Millisecond,
		"Clarion's MCP endpoint is stateless: each call authenticates the API token, reads the skill and writes an audit record in the database")
	return vs
}
