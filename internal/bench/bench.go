// Package bench owns `clarion bench`, Clarion's performance benchmark: it
// starts the Microsoft emulator (a child process) and Clarion (this
// process) on loopback, and measures on SQLite and on PostgreSQL
//
//   - scale: N monitors over N/10 connected tenants — schedule lag of the
//     polls, CPU per poll and idle CPU, RSS, upstream requests per monitor
//     per interval, queries per Sentinel workspace, token refreshes;
//   - latency: incident visible upstream → alert committed, during scale;
//   - tools: the latency an agent tool call gains through Clarion's MCP
//     endpoint over the same call made to Microsoft directly;
//   - burst: many new incidents at once in one workspace, ingested, as a
//     ratio to the raw bulk-insert rate of the same rows into the same
//     database (the physical limit of the machine), and the memory it took.
//
// Each figure is printed with its target and PASS or MISS. The machine the
// bench runs on is usually shared and noisy: where a figure can be a ratio
// of two things measured in the same run, it is. BENCHMARKS.md at the
// repository root says how to run it, holds the figures of a run and what
// bounds them.
package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Options size the benchmark. Zero fields take the full run's values
// (Full); Quick gives the small sizes the CI test runs.
type Options struct {
	// Monitors are the scale levels, ascending: N monitors over
	// N/MonitorsPerTenant tenants, each level adding to the previous.
	Monitors []int
	// MonitorsPerTenant monitors per connected tenant (one Clarion
	// workspace per tenant), spread over WorkspacesPerTenant Sentinel
	// workspaces, half of them with a severity filter.
	MonitorsPerTenant   int
	WorkspacesPerTenant int
	// Interval is the poll interval; each level is measured over one.
	Interval time.Duration
	// Burst is how many incidents appear at once in one workspace.
	Burst int
	// RawBatch is the rows per transaction of the raw insert.
	RawBatch int
	// ToolCalls is how many paired tool calls (direct, through Clarion)
	// are timed.
	ToolCalls int
	// LatencyIncidents become visible during the largest level's window.
	LatencyIncidents int
	// TokenLifetime is the access-token lifetime of the token phase's
	// emulator, short so that a few seconds span several lifetimes (the
	// scale phase's emulator uses Microsoft's hour). TokenRun is how long
	// its TokenTenants connections poll.
	TokenLifetime time.Duration
	TokenRun      time.Duration
	TokenTenants  int
	// ConnectWorkers connect tenants through the consent flow in parallel.
	ConnectWorkers int
	// Databases are the stores to measure: "sqlite" (a file in a new
	// temporary folder) or a postgres:// URL (a schema of its own is
	// created and dropped).
	Databases []string
	// Logger receives Clarion's warnings (default: discard).
	Logger *slog.Logger
	// Progress receives a line per step (default: discard).
	Progress io.Writer
}

// Full is the run BENCHMARKS.md reports.
func Full() Options {
	return Options{
		Monitors: []int{1000, 10000}, MonitorsPerTenant: 10, WorkspacesPerTenant: 5,
		Interval: 60 * time.Second, Burst: 100000, RawBatch: 1000, ToolCalls: 300,
		LatencyIncidents: 100, TokenLifetime: 62 * time.Second, TokenRun: 10 * time.Second, TokenTenants: 10, ConnectWorkers: 4,
	}
}

// Quick is the smallest run that still exercises every measurement (the
// CI test, `clarion bench --quick`): seconds, not minutes.
func Quick() Options {
	return Options{
		Monitors: []int{10, 20}, MonitorsPerTenant: 10, WorkspacesPerTenant: 5,
		Interval: time.Second, Burst: 1000, RawBatch: 500, ToolCalls: 10,
		LatencyIncidents: 6, TokenLifetime: 62 * time.Second, TokenRun: 5 * time.Second, TokenTenants: 2, ConnectWorkers: 2,
	}
}

func (o Options) withDefaults() Options {
	f := Full()
	if len(o.Monitors) == 0 {
		o.Monitors = f.Monitors
	}
	o.Monitors = slices.Clone(o.Monitors)
	slices.Sort(o.Monitors)
	if o.MonitorsPerTenant <= 0 {
		o.MonitorsPerTenant = f.MonitorsPerTenant
	}
	if o.WorkspacesPerTenant <= 0 {
		o.WorkspacesPerTenant = f.WorkspacesPerTenant
	}
	if o.Interval <= 0 {
		o.Interval = f.Interval
	}
	if o.Burst <= 0 {
		o.Burst = f.Burst
	}
	if o.RawBatch <= 0 {
		o.RawBatch = f.RawBatch
	}
	if o.ToolCalls <= 0 {
		o.ToolCalls = f.ToolCalls
	}
	if o.LatencyIncidents <= 0 {
		o.LatencyIncidents = f.LatencyIncidents
	}
	if o.TokenLifetime <= 0 {
		o.TokenLifetime = f.TokenLifetime
	}
	if o.TokenRun <= 0 {
		o.TokenRun = f.TokenRun
	}
	if o.TokenTenants <= 0 {
		o.TokenTenants = f.TokenTenants
	}
	if o.ConnectWorkers <= 0 {
		o.ConnectWorkers = f.ConnectWorkers
	}
	if len(o.Databases) == 0 {
		o.Databases = []string{"sqlite"}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	return o
}

func (o Options) tenants() int {
	return (o.Monitors[len(o.Monitors)-1] + o.MonitorsPerTenant - 1) / o.MonitorsPerTenant
}

// Main runs `clarion bench`.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if IsChild() {
		return runEmulatorChild(ctx, os.Getenv(envConfig), os.Stdin, stdout)
	}
	fs := flag.NewFlagSet("clarion bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "small sizes (seconds): what the CI test runs")
	var dbs stringList
	fs.Var(&dbs, "database-url", `a store to measure: "sqlite" (a file in a new temporary folder) or postgres://… (a schema of its own is created and dropped); repeatable (default sqlite)`)
	monitors := fs.String("monitors", "", "scale levels, e.g. 1000,10000 (default 1000,10000; --quick 10,20)")
	interval := fs.Duration("interval", 0, "poll interval (default 60s; --quick 1s)")
	burst := fs.Int("burst", 0, "incidents of the burst (default 100000)")
	toolCalls := fs.Int("tool-calls", 0, "paired tool calls timed (default 300)")
	lifetime := fs.Duration("token-lifetime", 0, "the token phase's access-token lifetime (default 62s; more than 1m: Clarion renews a minute early)")
	verbose := fs.Bool("v", false, "print each step and Clarion's warnings on stderr")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run (Clarion's side) to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o := Full()
	if *quick {
		o = Quick()
	}
	if *monitors != "" {
		o.Monitors = nil
		for _, s := range strings.Split(*monitors, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n <= 0 {
				return fmt.Errorf("monitors: %q is not a positive number", s)
			}
			o.Monitors = append(o.Monitors, n)
		}
	}
	if *interval > 0 {
		o.Interval = *interval
	}
	if *burst > 0 {
		o.Burst = *burst
	}
	if *toolCalls > 0 {
		o.ToolCalls = *toolCalls
	}
	if *lifetime > 0 {
		o.TokenLifetime = *lifetime
	}
	if o.TokenLifetime <= time.Minute {
		return errors.New("token-lifetime: Clarion renews tokens a minute early: give more than 1m")
	}
	if o.Interval < time.Second {
		return errors.New("interval: at least 1s")
	}
	o.Databases = dbs
	if *verbose {
		o.Progress = stderr
		o.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	_, err := Run(ctx, o, stdout)
	return err
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// Run runs the benchmark and prints its report to out; it returns the
// results too.
func Run(ctx context.Context, o Options, out io.Writer) ([]*StoreResult, error) {
	o = o.withDefaults()
	start := time.Now()
	host := describeHost()
	fmt.Fprintf(out, "clarion bench: %s\n", host)
	fmt.Fprintf(out, "sizes: monitors %v (%d per tenant, %d Sentinel workspaces per tenant), interval %s, burst %d, tool calls %d, latency incidents %d; tokens: %d connections for %s with %s tokens\n\n",
		o.Monitors, o.MonitorsPerTenant, o.WorkspacesPerTenant, o.Interval, o.Burst, o.ToolCalls, o.LatencyIncidents, o.TokenTenants, o.TokenRun, o.TokenLifetime)
	progress(o, "starting the emulator children: %d tenants with 1 h tokens, %d with %s tokens", o.tenants(), o.TokenTenants, o.TokenLifetime)
	emu, err := startEmulator(ctx, emuConfig{Tenants: o.tenants(), WorkspacesPerTenant: o.WorkspacesPerTenant,
		AccessTokenTTL: time.Hour, BurstRows: o.Burst})
	if err != nil {
		return nil, err
	}
	defer emu.stop()
	tokEmu, err := startEmulator(ctx, emuConfig{Tenants: o.TokenTenants, WorkspacesPerTenant: 1, AccessTokenTTL: o.TokenLifetime})
	if err != nil {
		return nil, err
	}
	defer tokEmu.stop()

	var results []*StoreResult
	for _, db := range o.Databases {
		r, err := runStore(ctx, o, emu, tokEmu, db)
		if r != nil {
			r.print(out, o)
			results = append(results, r)
		}
		if err != nil {
			return results, err
		}
		// Hand the memory of this run back before the next one measures.
		runtime.GC()
		debug.FreeOSMemory()
	}
	fmt.Fprintf(out, "\nload average at the end: %.2f; whole run %s\n", loadAverage(), time.Since(start).Round(time.Second))
	return results, nil
}

func progress(o Options, format string, args ...any) {
	fmt.Fprintf(o.Progress, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// describeHost names the machine: CPU model, cores, memory, Go, load.
func describeHost() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				if f := strings.Fields(v); len(f) > 0 {
					kb, _ := strconv.ParseFloat(f[0], 64)
					mem = fmt.Sprintf(", %.0f GB RAM", kb/1024/1024)
				}
			}
		}
	}
	return fmt.Sprintf("%s, %d cores (GOMAXPROCS %d)%s, %s %s/%s, load average %.2f at start",
		cpu, runtime.NumCPU(), runtime.GOMAXPROCS(0), mem, runtime.Version(), runtime.GOOS, runtime.GOARCH, loadAverage())
}
