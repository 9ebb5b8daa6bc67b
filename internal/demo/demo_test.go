package demo

import (
	"testing"
	"time"

	"github.com/clarion/sentinel/internal/emulator"
	"github.com/clarion/sentinel/internal/samples"
)

func TestShiftKeepsOrderAndMovesEveryTimeColumn(t *testing.T) {
	t.Parallel()
	rows, err := emulator.LoadIncidents(samples.Path(t, "arm_incidents_list_page_nextlink_SOC_agent_ss.json"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	out := Shift(rows, start, time.Second)
	if len(out) != len(rows) {
		t.Fatalf("%d rows out of %d", len(out), len(rows))
	}
	orig := map[string]emulator.Row{}
	for _, r := range rows {
		orig[r["IncidentName"].(string)] = r
	}
	var prev time.Time
	for i, r := range out {
		created, err := timeValue(r["CreatedTime"])
		if err != nil {
			t.Fatal(err)
		}
		if want := start.Add(time.Duration(i) * time.Second); !created.Equal(want) {
			t.Fatalf("row %d created %v, want %v", i, created, want)
		}
		o := orig[r["IncidentName"].(string)]
		oc, _ := timeValue(o["CreatedTime"])
		if oc.Before(prev) {
			t.Fatalf("row %d: original order not kept", i)
		}
		prev = oc
		om, _ := timeValue(o["LastModifiedTime"])
		nm, _ := timeValue(r["LastModifiedTime"])
		if !om.IsZero() && nm.Sub(created) != om.Sub(oc) {
			t.Fatalf("row %d: LastModifiedTime not shifted with CreatedTime (%v vs %v)", i, nm.Sub(created), om.Sub(oc))
		}
	}
}
