package e2e

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/clarion/sentinel/internal/emulator"
	"github.com/clarion/sentinel/internal/monitor"
)

// TestMonitorsOfOneSentinelWorkspaceShareOneSweep: two monitors of one
// Clarion workspace on one Sentinel workspace, with different filters and
// created at different times, are served by one query sweep per interval
// (not one each), and each still gets exactly what it would get alone: its
// own filters, nothing from before it existed, its own counts. With a page
// budget of one page per poll the feed resumes from cursors that differ per
// monitor, and ends with the same alerts.
func TestMonitorsOfOneSentinelWorkspaceShareOneSweep(t *testing.T) {
	t.Parallel()
	for _, budget := range []int{20, 1} {
		t.Run(fmt.Sprintf("pages per poll %d", budget), func(t *testing.T) {
			t.Parallel()
			feedShared(t, budget)
		})
	}
}

func feedShared(t *testing.T, budget int) {
	// A one-second look-back keeps the second sweep short (it starts a
	// second before the newest incident seen).
	e := setup(t, envOpts{pageSize: 2, lookback: time.Second})
	e.connect()
	eng, rec := e.engine(monitor.Config{PageSize: 2, MaxPagesPerPoll: budget})
	t0 := e.clock.Now()

	low := e.addMonitor(map[string]any{"name": "low queue", "source": "siem", "enabled": true, "severities": []string{"low"}})
	e.incident("before-both", t0.Add(-time.Minute), map[string]any{"Severity": "High"})
	e.clock.Advance(time.Minute)
	t1 := e.clock.Now()
	e.incident("low-1", t1.Add(-10*time.Second), map[string]any{"Severity": "Low"})
	e.incident("high-before-m2", t1.Add(-5*time.Second), map[string]any{"Severity": "High"})
	high := e.addMonitor(map[string]any{"name": "high queue", "source": "siem", "enabled": true, "severities": []string{"high"}})
	e.clock.Advance(time.Minute)
	t2 := e.clock.Now()
	for i, sev := range []string{"High", "Low", "Medium", "High", "Low"} {
		e.incident(fmt.Sprintf("after-%d-%s", i, sev), t2.Add(time.Duration(i-20)*time.Second), map[string]any{"Severity": sev})
	}

	// Both monitors are due (new monitors poll at once): one feed poll.
	sweeps := e.pollFeedUntilDone(eng)
	if sweeps != 1 && budget > 1 {
		t.Fatalf("the feed took %d polls, want 1", sweeps)
	}
	// The sweep starts at the older monitor's creation: 7 rows since t0,
	// pages of 2. Alone, each monitor would have read its own pages too.
	// The first page ends before the high queue existed: with one page per
	// poll, the low queue resumes from its cursor, the high queue from its
	// creation.
	if got, want := len(rec.all()), 4; got != want {
		t.Fatalf("first interval: %d query_lake calls, want %d (one sweep of 7 rows in pages of 2 for both monitors): %q", got, want, rec.all())
	}
	want := map[string]string{
		"low-1": low.ID, "after-1-Low": low.ID, "after-4-Low": low.ID,
		"after-0-High": high.ID, "after-3-High": high.ID,
	}
	e.alertsByMonitor(want)

	lowM, highM := e.stored(low.ID), e.stored(high.ID)
	if !lowM.NextPollAt.Equal(highM.NextPollAt) {
		t.Fatalf("the feed's monitors are due at %v and %v: not on one schedule", lowM.NextPollAt, highM.NextPollAt)
	}
	// Counts are each monitor's own (of its last poll): the high queue
	// never saw the rows from before it existed.
	// (With one page per poll they count the last page only.)
	if budget > 1 {
		if c := e.monitor(low.ID).Health.Counts; c.Returned != 7 || c.FilteredSeverity != 4 {
			t.Errorf("low queue counts %+v, want 7 returned, 4 filtered by severity", c)
		}
		if c := e.monitor(high.ID).Health.Counts; c.Returned != 5 || c.FilteredSeverity != 3 {
			t.Errorf("high queue counts %+v, want 5 returned (since it was created), 3 filtered by severity", c)
		}
	}

	// The next interval: one query for both monitors, which both poll.
	before := len(rec.all())
	e.clock.Set(lowM.NextPollAt)
	e.incident("next-high", e.clock.Now().Add(-2*time.Second), map[string]any{"Severity": "High"})
	e.incident("next-low", e.clock.Now().Add(-time.Second), map[string]any{"Severity": "Low"})
	e.pollFeedUntilDone(eng)
	// The sweep: after-3 and after-4 (a second of look-back behind the
	// watermark, inclusive), next-high, next-low: two full pages and an
	// empty one. Each monitor on its own would have made these three.
	if got := len(rec.all()) - before; got != 3 {
		t.Fatalf("second interval: %d query_lake calls, want 3 (one sweep of 4 rows in pages of 2) for the two monitors: %q", got, rec.all()[before:])
	}
	want["next-high"], want["next-low"] = high.ID, low.ID
	e.alertsByMonitor(want)
	for _, id := range []string{low.ID, high.ID} {
		if m := e.stored(id); !m.Health.LastPollAt.Equal(e.clock.Now()) || m.Health.Status != "healthy" {
			t.Errorf("monitor %s: last poll %v, status %q; want polled now and healthy", m.Name, m.Health.LastPollAt, m.Health.Status)
		}
	}
}

// pollFeedUntilDone polls the env's feed at its due time until a poll
// leaves nothing for now (a page budget may cut a sweep); it returns how
// many polls that took.
func (e *env) pollFeedUntilDone(eng *monitor.Engine) int {
	e.t.Helper()
	for n := 1; n <= 50; n++ {
		next, err := eng.PollFeed(e.t.Context(), e.ws.ID, emulator.ContosoWorkspaceID)
		if err != nil {
			e.t.Fatalf("poll feed: %v", err)
		}
		if next.IsZero() {
			e.t.Fatal("the feed polled no monitor")
		}
		if next.After(e.clock.Now()) {
			return n
		}
	}
	e.t.Fatal("the feed never finished its sweep")
	return 0
}

// alertsByMonitor asserts the workspace's alerts: exactly one per incident
// of want, made by the monitor want names, and no other.
func (e *env) alertsByMonitor(want map[string]string) {
	e.t.Helper()
	got := map[string]string{}
	for _, a := range e.alerts() {
		if _, dup := got[a.IncidentID]; dup {
			e.t.Fatalf("incident %s alerted twice", a.IncidentID)
		}
		got[a.IncidentID] = a.MonitorID
	}
	if !maps.Equal(got, want) {
		e.t.Fatalf("alerts by incident → monitor:\n got %v\nwant %v (incidents %v)", got, want, slices.Sorted(maps.Keys(got)))
	}
}
