package bench_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/clarion/sentinel/internal/bench"
)

// TestMain lets this test binary serve as the bench's emulator child: the
// bench re-runs its own executable for it.
func TestMain(m *testing.M) {
	if bench.IsChild() {
		os.Exit(bench.RunChild())
	}
	os.Exit(m.Run())
}

// TestBenchRunsAtQuickSize runs `clarion bench --quick` on SQLite (and on
// PostgreSQL when CLARION_TEST_DATABASE_URL names one) and checks that it
// still measures and prints every figure. It checks no target: on a shared
// machine timings are not test material.
func TestBenchRunsAtQuickSize(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an emulator process and two Clarions: skipped with -short")
	}
	o := bench.Quick()
	o.Databases = []string{"sqlite"}
	if u := os.Getenv("CLARION_TEST_DATABASE_URL"); u != "" {
		o.Databases = append(o.Databases, u)
	}
	var out strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	results, err := bench.Run(ctx, o, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != len(o.Databases) {
		t.Fatalf("%d results for %d databases", len(results), len(o.Databases))
	}
	for _, r := range results {
		if len(r.Levels) != len(o.Monitors) {
			t.Errorf("%s: %d scale levels measured, want %d", r.Name, len(r.Levels), len(o.Monitors))
		}
		for _, lv := range r.Levels {
			if lv.Polls == 0 || lv.Lag.N == 0 || lv.Queries == 0 {
				t.Errorf("%s, %d monitors: no polls measured: %+v", r.Name, lv.Monitors, lv)
			}
		}
		if r.Latency.Committed != r.Latency.Incidents {
			t.Errorf("%s: %d of %d latency incidents became alerts", r.Name, r.Latency.Committed, r.Latency.Incidents)
		}
		if r.Tools.Calls != o.ToolCalls {
			t.Errorf("%s: %d tool calls timed, want %d", r.Name, r.Tools.Calls, o.ToolCalls)
		}
		if r.Burst.RawRows != o.Burst || r.Burst.Elapsed <= 0 {
			t.Errorf("%s: burst %+v", r.Name, r.Burst)
		}
		if vs := r.Verdicts(o); len(vs) != 9 {
			t.Errorf("%s: %d targets checked, want 9", r.Name, len(vs))
		}
	}
	for _, want := range []string{"schedule lag", "RSS", "per poll", "query_lake per Sentinel workspace", "token refreshes",
		"burst", "raw insert", "latency visible", "tools (", "PASS"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the report has no %q", want)
		}
	}
}
