package monitor

import (
	"testing"
	"time"
)

func TestSeverityFilterAllOrNoneMeansNoFilter(t *testing.T) {
	t.Parallel()
	cases := []struct {
		filter []string
		sev    string
		want   bool
	}{
		{nil, "low", true},
		{[]string{"critical", "high", "medium", "low"}, "low", true},
		{[]string{"high"}, "high", true},
		{[]string{"high"}, "low", false},
		{[]string{"high", "critical"}, "medium", false},
		{[]string{"low"}, "low", true},
	}
	for _, c := range cases {
		if got := severityAllowed(c.filter, c.sev); got != c.want {
			t.Errorf("severityAllowed(%v, %q) = %v, want %v", c.filter, c.sev, got, c.want)
		}
	}
}

func TestNextSlotIsStablePerMonitorAndSpreadAcrossMonitors(t *testing.T) {
	t.Parallel()
	e := New(Config{Interval: time.Minute}, nil, nil)
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	a1 := e.nextSlot("monitor-a", t0)
	a2 := e.nextSlot("monitor-a", a1)
	if got := a2.Sub(a1); got != time.Minute {
		t.Fatalf("consecutive slots %v apart, want one interval", got)
	}
	if !a1.After(t0) || a1.Sub(t0) > time.Minute {
		t.Fatalf("slot %v not within one interval after %v", a1, t0)
	}
	// 200 monitors must not all land in the same second of the minute.
	seconds := map[int]bool{}
	for i := range 200 {
		seconds[e.nextSlot(string(rune('a'+i%26))+time.Duration(i).String(), t0).Second()] = true
	}
	if len(seconds) < 30 {
		t.Fatalf("200 monitors fall on only %d distinct seconds: not spread", len(seconds))
	}
}

func TestBackoffGrowsAndIsCapped(t *testing.T) {
	t.Parallel()
	e := New(Config{Interval: time.Minute, MaxBackoff: 10 * time.Minute}, nil, nil)
	prev := time.Duration(0)
	for f := 1; f <= 4; f++ {
		d := e.backoff(f)
		if d <= prev {
			t.Fatalf("backoff(%d) = %v, not above backoff(%d) = %v", f, d, f-1, prev)
		}
		prev = d
	}
	for f := 5; f < 40; f++ {
		if d := e.backoff(f); d > 12*time.Minute {
			t.Fatalf("backoff(%d) = %v, above the cap plus jitter", f, d)
		}
	}
}
