package bench

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/clarion/sentinel/internal/demo"
	"github.com/clarion/sentinel/internal/store"
)

// BurstResult is a burst of incidents in one workspace, ingested by one
// monitor, against the raw insert of the same alert rows into the same
// database.
type BurstResult struct {
	Incidents int
	Elapsed   time.Duration // visible → last alert committed
	Pages     int64         // pages committed
	CPU       time.Duration // Clarion's CPU during the burst
	LakeCPU   time.Duration // the lake's (the emulator child's) CPU during the burst
	RawCPU    time.Duration // this process's CPU during the raw insert's commits
	// Raw: the same rows inserted with store.CommitPage in RawBatch-row
	// transactions, nothing else (no upstream, no parsing, no mapping).
	RawRows    int
	RawBatch   int
	RawElapsed time.Duration
	// Memory: Go heap and RSS before the burst and their peaks during it;
	// Backlog is the size of the burst's payloads.
	BaseHeap, PeakHeap, BaseRSS, PeakRSS uint64
	Backlog                              uint64
}

// Rate is alerts per second of the burst.
func (b BurstResult) Rate() float64 { return rate(b.Incidents, b.Elapsed) }

// RawRate is rows per second of the raw insert.
func (b BurstResult) RawRate() float64 { return rate(b.RawRows, b.RawElapsed) }

// CPUShare is the burst's speed as a share of the raw insert's, by CPU time
// per row rather than wall time: raw CPU per row over Clarion's CPU per
// alert. Both ran on this process only, so the other work of a shared
// machine cancels out; the lake's CPU is not Clarion's and is left out.
func (b BurstResult) CPUShare() float64 {
	if b.CPU <= 0 || b.RawRows == 0 || b.Incidents == 0 {
		return 0
	}
	return (b.RawCPU.Seconds() / float64(b.RawRows)) / (b.CPU.Seconds() / float64(b.Incidents))
}

func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func runBurst(ctx context.Context, o Options, emu *emuProcess, db *database, res *StoreResult) error {
	c, err := startClarion(ctx, db.dsnB, db.dirB, emu.URL, emu.URL+"/burst/mcp", o.Interval, o.Logger)
	if err != nil {
		return err
	}
	defer c.close()
	b := &res.Burst
	b.Incidents, b.RawBatch = o.Burst, o.RawBatch

	w, tok, err := c.app.CreateWorkspace(ctx, "burst")
	if err != nil {
		return err
	}
	if err := demo.Connect(ctx, c.url, tok, adminUsername(0)); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	// One monitor, due the moment the incidents appear: the figure is the
	// ingest, not the wait for the monitor's slot.
	created := time.Now().UTC()
	release := created.Add(2 * time.Second)
	m := store.Monitor{ID: store.NewID(), WorkspaceID: w.ID, Name: "burst", SourceKind: store.SourceSIEM,
		SentinelWorkspaceID: burstWorkspaceID, Enabled: true, CreatedAt: created, UpdatedAt: created, NextPollAt: release,
		Health: store.Health{Status: store.HealthPending}}
	if err := c.app.Store.CreateMonitor(ctx, m); err != nil {
		return err
	}
	if err := postJSON(ctx, emu.URL+"/burst/_release", lakeRelease{CreatedFrom: created.Add(time.Millisecond), VisibleAt: release}, 204); err != nil {
		return err
	}
	c.eng.Reload()
	runtime.GC()
	b.BaseHeap = heapInUse()
	b.BaseRSS, _ = memOf("self")
	mem := startMemSampler(100 * time.Millisecond)
	defer mem.close()
	if err := sleepUntil(ctx, release); err != nil {
		return err
	}
	mem.reset()
	cpu0, lake0 := cpuSelf(), cpuOf(emu.Pid())
	// Generous: the slowest store seen ingests well above 500 alerts/s.
	limit := release.Add(max(2*time.Minute, time.Duration(o.Burst/200)*time.Second))
	ok, err := waitFor(ctx, limit, 20*time.Millisecond, func() bool { return c.rec.inserted.Load() >= int64(o.Burst) })
	if err != nil {
		return err
	}
	b.CPU, b.LakeCPU = cpuSelf()-cpu0, cpuOf(emu.Pid())-lake0
	b.PeakRSS, b.PeakHeap = mem.peaks()
	b.Elapsed = c.rec.lastCommitAt().Sub(release)
	b.Pages = c.rec.pages.Load()
	if !ok {
		return fmt.Errorf("only %d of %d incidents became alerts by %s", c.rec.inserted.Load(), o.Burst, limit.Sub(release).Round(time.Second))
	}
	c.stopEngine()

	progress(o, "%s: raw insert of the same %d rows", res.Name, o.Burst)
	return rawInsert(ctx, o, c.app.Store, w.ID, b)
}

// rawInsert copies the burst's alerts into a new workspace of the same
// database with store.CommitPage, RawBatch rows per transaction, timing the
// commits only. The alerts are read back in chunks, so that the copy never
// holds the backlog either.
func rawInsert(ctx context.Context, o Options, st store.Store, fromWS string, b *BurstResult) error {
	now := time.Now().UTC()
	rw := store.Workspace{ID: store.NewID(), Name: "raw insert", CreatedAt: now}
	if err := st.CreateWorkspace(ctx, rw); err != nil {
		return err
	}
	rm := store.Monitor{ID: store.NewID(), WorkspaceID: rw.ID, Name: "raw", SourceKind: store.SourceSIEM,
		SentinelWorkspaceID: burstWorkspaceID, Enabled: true, CreatedAt: now, UpdatedAt: now, NextPollAt: now.Add(-time.Second)}
	if err := st.CreateMonitor(ctx, rm); err != nil {
		return err
	}
	const rawOwner = "bench-raw"
	if _, ok, err := st.ClaimPoll(ctx, rm.ID, rawOwner, now, now.Add(time.Hour)); err != nil || !ok {
		return fmt.Errorf("claim the raw monitor: ok=%t err=%v", ok, err)
	}
	chunk := max(10*o.RawBatch, store.MaxAlertLimit)
	var (
		f   = store.AlertFilter{Limit: store.MaxAlertLimit}
		buf []store.Alert
	)
	flush := func() error {
		for len(buf) > 0 {
			n := min(o.RawBatch, len(buf))
			batch := buf[:n]
			buf = buf[n:]
			t0, c0 := time.Now(), cpuSelf()
			ins, err := st.CommitPage(ctx, rm.ID, rawOwner, batch, store.Progress{})
			b.RawElapsed += time.Since(t0)
			b.RawCPU += cpuSelf() - c0
			if err != nil {
				return err
			}
			b.RawRows += ins
		}
		return nil
	}
	for {
		page, err := st.ListAlerts(ctx, fromWS, f)
		if err != nil {
			return err
		}
		for _, a := range page {
			b.Backlog += uint64(len(a.Payload))
			a.ID, a.WorkspaceID, a.MonitorID = store.NewID(), "", ""
			buf = append(buf, a)
		}
		if len(buf) >= chunk || len(page) < f.Limit {
			if err := flush(); err != nil {
				return err
			}
		}
		if len(page) < f.Limit {
			break
		}
		last := page[len(page)-1]
		f.BeforeIngestedAt, f.BeforeID = last.IngestedAt, last.ID
	}
	if b.RawRows != b.Incidents {
		return fmt.Errorf("raw insert: %d rows inserted, want %d", b.RawRows, b.Incidents)
	}
	return nil
}
