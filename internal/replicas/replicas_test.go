package replicas_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/clarion/sentinel/internal/connection"
	"github.com/clarion/sentinel/internal/demo"
	"github.com/clarion/sentinel/internal/emulator"
	"github.com/clarion/sentinel/internal/entra"
	"github.com/clarion/sentinel/internal/proctest"
	"github.com/clarion/sentinel/internal/secrets"
	"github.com/clarion/sentinel/internal/store/storetest"
)

// The shape of the run: 5 tenants with 2 Sentinel workspaces each; 10
// Clarion workspaces (2 per tenant), each connected through the consent
// flow and holding 20 monitors (10 on each Sentinel workspace of its
// tenant, some with filters): 200 monitors. Three replicas poll them every
// 3 s (67 polls a second: after the kill and the stop, one replica alone
// keeps that pace on a 2-core machine that runs other tests too) while
// ten incidents a second arrive.
const (
	numTenants     = 5
	sentinelPer    = 2 // Sentinel workspaces per tenant
	clarionPer     = 2 // Clarion workspaces connected to each tenant
	monitorsPer    = 20
	numReplicas    = 3
	interval       = 3 * time.Second
	incidentEvery  = 100 * time.Millisecond
	maxIngestDelay = 2500 * time.Millisecond
	// lookback must cover the ingestion delay: an incident becomes visible
	// before the next poll, whose sweep starts lookback before the
	// watermark of the poll before it. Twice the delay, and no more, keeps
	// each poll's re-read (and so its database work) small.
	lookback         = 2 * maxIngestDelay
	phase            = 3 * interval // how long each replica set runs
	numMonitors      = numTenants * clarionPer * monitorsPer
	numConnections   = numTenants * clarionPer
	numFeeds         = numConnections * sentinelPer // (Clarion workspace, Sentinel workspace) pairs
	readyTimeout     = 30 * time.Second
	gracefulDeadline = 20 * time.Second
)

func tenantID(i int) string       { return fmt.Sprintf("7e000000-0000-4000-8000-%012d", i) }
func sentinelWS(i, j int) string  { return fmt.Sprintf("5e000000-0000-4000-8000-%06d%06d", i, j) }
func adminUsername(i int) string  { return fmt.Sprintf("admin@tenant%d.example", i) }
func replicaID(n int) string      { return fmt.Sprintf("replica-%d", n) }
func clarionTenant(k int) int     { return k % numTenants } // Clarion workspace k → tenant
func adminOID(i int) string       { return fmt.Sprintf("ad000000-0000-4000-8000-%012d", i) }
func replicaOf(k int) int         { return k % numReplicas } // which replica serves workspace k's API calls
func monitorName(k, j int) string { return fmt.Sprintf("monitor %02d-%02d", k, j) }

// TestReplicasPollEachMonitorOnceAndTakeOver: three `clarion serve`
// processes on one PostgreSQL schema share 200 monitors of 10 Clarion
// workspaces over 5 tenants while incidents arrive. Mid-run one replica is
// killed (SIGKILL) in the middle of polls and another stopped (SIGTERM).
// Afterwards every incident is an alert exactly once in each Clarion
// workspace that watches it; every monitor was polled again within two
// intervals of the kill and of the stop, and kept polling to the end; the
// stopped replica handed its leases back; there was about one query_lake
// call per feed (a Clarion workspace's monitors of one Sentinel workspace)
// per interval; each connection's token was refreshed once
// per replica, with every rotated refresh token stored and the stored one
// still valid. The upstream economy is printed.
func TestReplicasPollEachMonitorOnceAndTakeOver(t *testing.T) {
	if testing.Short() {
		t.Skip("replica test: runs three clarion processes for half a minute; skipped with -short")
	}
	dsn := storetest.PostgresDSN(t) // skipped (failed under CI=true) without CLARION_TEST_DATABASE_URL
	began := time.Now()
	h := setup(t, dsn)

	// Clarion workspaces, through the CLI as an operator would.
	h.clarion("migrate")
	h.installPollLog()
	ws := make([]workspace, numTenants*clarionPer)
	for k := range ws {
		ws[k] = h.createWorkspace(fmt.Sprintf("SOC %02d", k))
	}

	var reps []*replica
	for n := 1; n <= numReplicas; n++ {
		reps = append(reps, h.startReplica(replicaID(n)))
	}
	for _, r := range reps {
		r.waitReady(t)
	}

	// Connect each workspace through the consent flow of a replica, then
	// add its monitors through that replica's API.
	var wg sync.WaitGroup
	for k := range ws {
		wg.Go(func() {
			base := reps[replicaOf(k)].url
			if err := demo.Connect(t.Context(), base, ws[k].token, adminUsername(clarionTenant(k))); err != nil {
				t.Errorf("connect workspace %d through %s: %v", k, reps[replicaOf(k)].id, err)
				return
			}
			for j := range monitorsPer {
				body := map[string]any{"name": monitorName(k, j), "source": "siem",
					"workspace_id": sentinelWS(clarionTenant(k), j%sentinelPer), "enabled": true}
				// The first monitor on each Sentinel workspace takes every
				// incident; the others filter, as monitors do.
				switch {
				case j < sentinelPer:
				case j%3 == 0:
					body["severities"] = []string{"high", "critical"}
				case j%3 == 1:
					body["severities"] = []string{"medium", "low"}
				default:
					body["search"] = "sign"
				}
				if code, msg := post(t, base+"/api/v1/monitors", ws[k].token, body); code != http.StatusCreated {
					t.Errorf("create monitor %d of workspace %d: HTTP %d %s", j, k, code, msg)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		h.dumpLogs(reps)
		t.FailNow()
	}

	// Every monitor is polled once, whichever replica saw it first.
	h.waitFor("every monitor polled once", 3*interval+10*time.Second, func() (bool, string) {
		var n int
		if err := h.db.QueryRow(`SELECT count(*) FROM monitors WHERE last_poll_at > 0`).Scan(&n); err != nil {
			return false, err.Error()
		}
		return n == numMonitors, fmt.Sprintf("%d of %d polled", n, numMonitors)
	}, reps)

	// The measured window: incidents flow; every poll is logged by the
	// database itself (a test-only trigger), with the replica that made it.
	flowCtx, stopFlow := context.WithCancel(t.Context())
	flowDone := make(chan struct{})
	go func() { defer close(flowDone); h.flow(flowCtx) }()
	stats0, windowStart := h.emu.Stats(), time.Now()

	h.run(phase, reps)
	// Kill a replica in the middle of polls: Microsoft answers one tenant
	// slowly for a moment, so that the replica holds poll leases when it
	// dies. Those leases are not handed back; they must lapse.
	killed := reps[0]
	h.emu.SetFault(emulator.Fault{Kind: emulator.FaultDelay, Target: emulator.ToolQueryLake, TenantID: tenantID(0),
		Delay: 3 * interval / 10, Count: 2 * monitorsPer})
	h.waitFor(killed.id+" holding a poll lease", 10*time.Second, func() (bool, string) {
		l, err := h.leasesOf(killed.id)
		return len(l) > 0, fmt.Sprintf("%d leases (%v)", len(l), err)
	}, reps)
	killed.kill()
	killedAt := time.Now()
	h.emu.ClearFaults()
	inFlight, err := h.leasesOf(killed.id)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s killed (SIGKILL) at +%s, holding %d poll leases", killed.id, killedAt.Sub(windowStart).Round(time.Millisecond), len(inFlight))

	h.run(phase, reps[1:])
	stopped := reps[1]
	stopAt := time.Now()
	if err := stopped.stop(); err != nil {
		h.dumpLogs(reps)
		t.Fatalf("%s on SIGTERM: %v", stopped.id, err)
	}
	stoppedAt := time.Now() // it polls on while its HTTP server drains; nothing after it exits
	t.Logf("%s stopped (SIGTERM) at +%s in %s", stopped.id, stopAt.Sub(windowStart).Round(time.Millisecond),
		stoppedAt.Sub(stopAt).Round(time.Millisecond))
	// Graceful shutdown hands work back: no lease of the stopped replica
	// is left behind, so the others need not wait for one to lapse.
	if held, err := h.leasesOf(stopped.id); err != nil || len(held) != 0 {
		t.Errorf("%s left %d leases behind after a graceful stop (%v)", stopped.id, len(held), err)
	}

	h.run(phase, reps[2:])
	stopFlow()
	<-flowDone
	want := h.expected()

	// Drain: what was added (some of it visible only after a delay) arrives.
	h.waitFor("every incident an alert", 3*interval+maxIngestDelay+5*time.Second, func() (bool, string) {
		got, err := h.alertCounts()
		if err != nil {
			return false, err.Error()
		}
		n, m := 0, 0
		for k := range ws {
			n += len(got[ws[k].id])
			m += len(want[clarionTenant(k)])
		}
		return n >= m, fmt.Sprintf("%d of %d alerts", n, m)
	}, reps[2:])
	// Every monitor kept polling: each one's last poll is within two
	// intervals of the end, and healthy. The end is the first moment this
	// holds, a few seconds at most: on a calm machine, at once.
	drained := time.Now()
	h.waitFor("every monitor polled within two intervals, healthy", 3*interval+20*time.Second, func() (bool, string) {
		var stale, unhealthy int
		err := h.db.QueryRow(`SELECT count(*) FILTER (WHERE last_poll_at < $1), count(*) FILTER (WHERE health_status <> 'healthy')
			FROM monitors`, time.Now().Add(-2*interval).UnixNano()).Scan(&stale, &unhealthy)
		if err != nil {
			return false, err.Error()
		}
		return stale == 0 && unhealthy == 0, fmt.Sprintf("%d not polled for two intervals, %d not healthy", stale, unhealthy)
	}, reps[2:])
	end := time.Now()
	stats1 := h.emu.Stats()

	// Exactly once: per Clarion workspace, one alert per incident of its
	// tenant, nothing else, straight from PostgreSQL.
	got, err := h.alertCounts()
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for k := range ws {
		exp := want[clarionTenant(k)]
		total += len(exp)
		var missing, doubled, unknown []string
		for _, inc := range exp {
			switch got[ws[k].id][inc] {
			case 0:
				missing = append(missing, inc)
			case 1:
			default:
				doubled = append(doubled, inc)
			}
		}
		for inc := range got[ws[k].id] {
			if !slices.Contains(exp, inc) {
				unknown = append(unknown, inc)
			}
		}
		if len(missing)+len(doubled)+len(unknown) > 0 {
			t.Errorf("workspace %s (tenant %d): %d incidents, %d alerts: missing %v, more than once %v, not expected %v",
				ws[k].name, clarionTenant(k), len(exp), len(got[ws[k].id]), missing, doubled, unknown)
		}
	}

	// Takeover: within two intervals of the kill, and of the stop, every
	// monitor was polled again (those whose poll the killed replica had in
	// flight included: their leases lapsed); on a machine so busy that
	// ordinary polls already came late, within one interval more than the
	// longest ordinary gap. (A lease outliving its holder by the whole
	// poll timeout, 40 s here, as before issue 6, fails this.)
	pl, err := h.pollLog()
	if err != nil {
		t.Fatal(err)
	}
	an := analyse(pl, windowStart, end, map[string]time.Time{killed.id: killedAt, stopped.id: stoppedAt},
		map[string]map[string]bool{killed.id: inFlight})
	if len(an.monitors) != numMonitors {
		t.Errorf("%d monitors polled, want %d", len(an.monitors), numMonitors)
	}
	bound := max(2*interval, an.ordinaryMax+interval)
	for _, r := range []*replica{killed, stopped} {
		if d := an.takeover[r.id]; d > bound {
			t.Errorf("after %s went away, a monitor waited %s for its next poll (ordinary gaps up to %s): want at most %s",
				r.id, d.Round(time.Millisecond), an.ordinaryMax.Round(time.Millisecond), bound)
		}
	}
	if d := an.leased[killed.id]; d > bound || len(inFlight) == 0 {
		t.Errorf("the %d monitors whose polls %s had in flight were polled again within %s of the kill: want within %s",
			len(inFlight), killed.id, d.Round(time.Millisecond), bound)
	}
	if len(an.afterDeath) > 0 {
		t.Errorf("polls by a replica after it was killed or stopped: %s", strings.Join(an.afterDeath[:min(len(an.afterDeath), 10)], "; "))
	}

	// Upstream economy. query_lake: each due monitor is polled by one
	// replica, once per interval (a second replica racing for it loses the
	// lease and calls nothing).
	window := end.Sub(windowStart)
	calls := toolCalls(stats1, "query_lake") - toolCalls(stats0, "query_lake")
	perMonitorInterval := float64(calls) / (float64(numMonitors) * window.Seconds() / interval.Seconds())
	// The monitors of one Clarion workspace on one Sentinel workspace (a
	// feed) share one sweep.
	perFeedInterval := float64(calls) / (float64(numFeeds) * window.Seconds() / interval.Seconds())
	// Refreshes: each replica refreshes a connection's token once (its own
	// access-token cache), and never twice for want of the rotated token.
	refreshes := refreshesPerConnection(stats1)
	sum, most := 0, 0
	for _, n := range refreshes {
		sum += n
		most = max(most, n)
	}
	line := fmt.Sprintf("replicas: upstream economy over %s (%d monitors, %d connections, %d replicas, interval %s): "+
		"query_lake calls per feed per interval %.3f, per monitor %.3f (%d calls; polls per monitor per interval %.3f); "+
		"token refreshes per connection mean %.2f, max %d (%d in all)",
		window.Round(time.Millisecond), numMonitors, numConnections, numReplicas, interval,
		perFeedInterval, perMonitorInterval, calls, float64(an.polls)/(float64(numMonitors)*window.Seconds()/interval.Seconds()),
		float64(sum)/float64(max(len(refreshes), 1)), most, sum)
	t.Log(line)
	fmt.Println(line)
	t.Logf("polls by replica %v; longest gap between two polls of a monitor %s (%d gaps over two intervals; per phase %v); "+
		"every monitor polled again within %s of the SIGKILL (%s for those it held leases of) and %s of the SIGTERM; "+
		"all polled and healthy %s after the drain; %d incidents, %d alerts",
		an.byOwner, an.ordinaryMax.Round(time.Millisecond), an.ordinaryLate, an.phaseMax,
		an.takeover[killed.id].Round(time.Millisecond), an.leased[killed.id].Round(time.Millisecond),
		an.takeover[stopped.id].Round(time.Millisecond), end.Sub(drained).Round(time.Millisecond), total/clarionPer, total)
	// About one call per feed per interval, whatever the load: three
	// replicas polling each feed would make it 3, each monitor polling on
	// its own 10. A little over one is the churn of this test: a feed's
	// monitors split between replicas for an interval while a killed
	// replica's leases lapse. (Fewer than one means a busy machine ran
	// polls late; that every monitor kept polling is checked above.)
	if perFeedInterval > 1.25 {
		t.Errorf("query_lake calls per feed per interval = %.3f, want about one (one replica sweeps each feed once an interval for all its monitors)", perFeedInterval)
	}
	if len(refreshes) != numConnections {
		t.Errorf("refresh tokens of %d sign-ins were redeemed, want %d (one per connection)", len(refreshes), numConnections)
	}
	if most > numReplicas {
		t.Errorf("a connection's token was refreshed %d times by %d replicas, want at most one refresh per replica", most, numReplicas)
	}

	// The rotated refresh tokens were never lost: each connection is still
	// connected, its version counts every refresh made under it (each
	// rotation stored), and the token stored in PostgreSQL still works.
	h.checkConnections(ws, refreshesPerTenant(stats1))

	for _, r := range reps {
		t.Logf("%s log: %s", r.id, logSummary(r.log))
	}
	t.Logf("replica test took %s", time.Since(began).Round(time.Millisecond))
	if t.Failed() {
		h.dumpLogs(reps)
	}
}

// ---- harness ----

type harness struct {
	t      *testing.T
	bin    string
	dir    string
	dsn    string
	db     *sql.DB
	emu    *emulator.Emulator
	emuURL string
	ecfg   emulator.Config
	key    []byte

	mu    sync.Mutex
	added map[int][]string // tenant → incident names added
}

type workspace struct {
	id, name, token string
}

func setup(t *testing.T, dsn string) *harness {
	t.Helper()
	h := &harness{t: t, dir: t.TempDir(), dsn: dsn, key: secrets.GenerateKey(), added: map[int][]string{}}

	built := make(chan error, 1)
	go func() { built <- h.build() }()

	h.ecfg = emulator.DefaultConfig()
	h.ecfg.Tenants = nil
	for i := range numTenants {
		tn := emulator.Tenant{ID: tenantID(i), Name: fmt.Sprintf("Tenant %d", i),
			Users:             []emulator.User{{OID: adminOID(i), Username: adminUsername(i), DisplayName: fmt.Sprintf("Admin %d", i)}},
			DataLakeOnboarded: true, DefenderMCPProvisioned: true}
		for j := range sentinelPer {
			tn.Workspaces = append(tn.Workspaces, emulator.Workspace{ID: sentinelWS(i, j), Name: fmt.Sprintf("tenant%d-sentinel-%d", i, j)})
		}
		h.ecfg.Tenants = append(h.ecfg.Tenants, tn)
	}
	emu, err := emulator.New(h.ecfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(emu.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(func() { emu.Close() }) // end MCP sessions first (cleanups run last-in first-out)
	h.emu, h.emuURL = emu, srv.URL

	h.db, err = sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.db.Close() })

	if err := <-built; err != nil {
		t.Fatal(err)
	}
	return h
}

// build compiles cmd/clarion into the test's temporary directory.
func (h *harness) build() (err error) {
	h.bin, err = proctest.BuildClarion(h.dir)
	return err
}

// env is the environment of every clarion command of the test: what all
// replicas must share (database, encryption key, client id and secret,
// Microsoft endpoints, interval). A replica adds its address and id.
func (h *harness) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CLARION_") {
			env = append(env, kv) // the caller's own CLARION_* settings must not leak in
		}
	}
	return append(env,
		// A pool of 8 connections each is plenty for 100 polls a second,
		// and leaves room on the server for the tests that run alongside.
		"CLARION_DATABASE_URL="+h.dsn+"&pool_max_conns=8",
		"CLARION_ENCRYPTION_KEY="+secrets.EncodeKey(h.key),
		"CLARION_CLIENT_ID="+h.ecfg.ClientID,
		"CLARION_CLIENT_SECRET="+h.ecfg.ClientSecret,
		"CLARION_ENTRA_AUTHORITY="+h.emuURL,
		"CLARION_SENTINEL_MCP_URL="+h.emuURL+"/mcp",
		"CLARION_POLL_INTERVAL="+interval.String(),
		"CLARION_LOOKBACK="+lookback.String(),
		"CLARION_DATA_DIR="+filepath.Join(h.dir, "data"),
		"CLARION_LOG_LEVEL=info",
	)
}

// clarion runs a CLI command and returns its standard output.
func (h *harness) clarion(args ...string) string {
	h.t.Helper()
	cmd := exec.Command(h.bin, args...)
	cmd.Env = h.env()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		h.t.Fatalf("clarion %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// createWorkspace runs `clarion workspace create` and reads the id and token.
func (h *harness) createWorkspace(name string) workspace {
	h.t.Helper()
	out := h.clarion("workspace", "create", name)
	w := workspace{name: name}
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "api token (shown once): "); ok {
			w.token = v
		}
		if strings.HasPrefix(line, "workspace ") {
			if i := strings.LastIndexByte(line, '('); i >= 0 {
				w.id = strings.TrimSuffix(line[i+1:], ")")
			}
		}
	}
	if w.id == "" || w.token == "" {
		h.t.Fatalf("clarion workspace create: no id or token in %q", out)
	}
	return w
}

// replica is one `clarion serve` child process.
type replica struct {
	id, url, log string
	cmd          *exec.Cmd
	exited       chan struct{}
	err          error // the process's exit, set before exited closes
}

func (h *harness) startReplica(id string) *replica {
	h.t.Helper()
	addr := proctest.FreeAddr(h.t)
	r := &replica{id: id, url: "http://" + addr, log: filepath.Join(h.dir, id+".log"), exited: make(chan struct{})}
	f, err := os.Create(r.log)
	if err != nil {
		h.t.Fatal(err)
	}
	r.cmd = exec.Command(h.bin, "serve")
	r.cmd.Env = append(h.env(), "CLARION_ADDR="+addr, "CLARION_REPLICA_ID="+id)
	r.cmd.Stdout, r.cmd.Stderr = f, f
	if err := r.cmd.Start(); err != nil {
		f.Close()
		h.t.Fatal(err)
	}
	go func() {
		r.err = r.cmd.Wait()
		f.Close()
		close(r.exited)
	}()
	h.t.Cleanup(r.kill)
	return r
}

func (r *replica) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	for {
		resp, err := http.Get(r.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-r.exited:
			t.Fatalf("%s exited before it was ready (%v):\n%s", r.id, r.err, tail(r.log, 40))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %s:\n%s", r.id, readyTimeout, tail(r.log, 40))
		}
		time.Sleep(50 * time.Millisecond) // polling readiness of another process
	}
}

func (r *replica) alive() bool {
	select {
	case <-r.exited:
		return false
	default:
		return true
	}
}

// kill ends the process at once (SIGKILL): no shutdown, leases left behind.
func (r *replica) kill() {
	if r.alive() {
		_ = r.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-r.exited
}

// stop asks for a graceful shutdown (SIGTERM) and waits for the exit.
func (r *replica) stop() error {
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-r.exited:
		if r.err != nil {
			return fmt.Errorf("exit: %w\n%s", r.err, tail(r.log, 20))
		}
		return nil
	case <-time.After(gracefulDeadline):
		r.kill()
		return fmt.Errorf("did not exit within %s", gracefulDeadline)
	}
}

// run lets the replicas work for d, failing at once if one of them exits.
func (h *harness) run(d time.Duration, reps []*replica) {
	h.t.Helper()
	deadline := time.After(d)
	for {
		for _, r := range reps {
			if !r.alive() {
				h.dumpLogs(reps)
				h.t.Fatalf("%s exited unexpectedly: %v", r.id, r.err)
			}
		}
		select {
		case <-deadline:
			return
		case <-time.After(100 * time.Millisecond):
		case <-h.t.Context().Done():
			h.t.FailNow()
		}
	}
}

// waitFor polls cond until it holds or timeout passes.
func (h *harness) waitFor(what string, timeout time.Duration, cond func() (bool, string), reps []*replica) {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			h.dumpLogs(reps)
			h.t.Fatalf("%s: not after %s (%s)", what, timeout, state)
		}
		time.Sleep(100 * time.Millisecond) // polling the database for a condition
	}
}

// flow adds incidents until ctx ends, round robin over the tenants and
// their Sentinel workspaces. Every third one becomes visible only after a
// delay, as Sentinel's ingestion delay does, with its creation time kept.
func (h *harness) flow(ctx context.Context) {
	tick := time.NewTicker(incidentEvery)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		tn, j := n%numTenants, (n/numTenants)%sentinelPer
		created := time.Now().UTC()
		row := emulator.DemoIncident(tenantID(tn), n, created)
		visible := time.Time{}
		if n%3 == 0 {
			visible = created.Add(time.Duration(1+n%5) * maxIngestDelay / 5)
		}
		stored, err := h.emu.AddIncidents(tenantID(tn), sentinelWS(tn, j), []emulator.Row{row}, visible)
		if err != nil {
			h.t.Errorf("add incident: %v", err)
			return
		}
		h.mu.Lock()
		h.added[tn] = append(h.added[tn], stored[0]["IncidentName"].(string))
		h.mu.Unlock()
	}
}

// expected returns the incidents added per tenant.
func (h *harness) expected() map[int][]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[int][]string, len(h.added))
	for tn, l := range h.added {
		out[tn] = slices.Clone(l)
	}
	return out
}

// alertCounts reads, per Clarion workspace, how many alerts each incident has.
func (h *harness) alertCounts() (map[string]map[string]int, error) {
	rows, err := h.db.Query(`SELECT workspace_id, incident_id, count(*) FROM alerts GROUP BY workspace_id, incident_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]map[string]int{}
	for rows.Next() {
		var w, inc string
		var n int
		if err := rows.Scan(&w, &inc, &n); err != nil {
			return nil, err
		}
		if out[w] == nil {
			out[w] = map[string]int{}
		}
		out[w][inc] = n
	}
	return out, rows.Err()
}

// leasesOf returns the leases owner holds in the database: the ids of the
// monitors it is polling, and "refresh:" + workspace id for each connection
// whose tokens it is refreshing.
func (h *harness) leasesOf(owner string) (map[string]bool, error) {
	rows, err := h.db.Query(`SELECT id FROM monitors WHERE lease_owner = $1
		UNION ALL SELECT 'refresh:' || workspace_id FROM connections WHERE refresh_owner = $1`, owner)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out[id] = true
	}
	return out, rows.Err()
}

// checkConnections: every connection is still connected; per tenant, the
// rotations stored (versions past the first) equal the refreshes Entra
// answered, so no rotated refresh token was dropped; and the stored refresh
// token of each connection is accepted by Entra.
func (h *harness) checkConnections(ws []workspace, refreshes map[string]int) {
	t := h.t
	t.Helper()
	box, err := secrets.NewBox(h.key)
	if err != nil {
		t.Fatal(err)
	}
	ec := &entra.Client{Authority: h.emuURL, ClientID: h.ecfg.ClientID, ClientSecret: h.ecfg.ClientSecret, HTTP: http.DefaultClient}
	rotations := map[string]int{}
	for k, w := range ws {
		var (
			tenant, state string
			version       int64
			enc           []byte
		)
		err := h.db.QueryRow(`SELECT tenant_id, state, version, refresh_token_enc FROM connections WHERE workspace_id = $1`, w.id).
			Scan(&tenant, &state, &version, &enc)
		if err != nil {
			t.Errorf("connection of %s: %v", w.name, err)
			continue
		}
		if tenant != tenantID(clarionTenant(k)) || state != "connected" {
			t.Errorf("connection of %s: tenant %s state %s", w.name, tenant, state)
		}
		rotations[tenant] += int(version - 1)
		rt, err := box.Open(enc, []byte(w.id))
		if err != nil {
			t.Errorf("connection of %s: stored refresh token does not decrypt: %v", w.name, err)
			continue
		}
		if _, err := ec.Refresh(t.Context(), tenant, string(rt), []string{connection.Scope(connection.SentinelPlatform), entra.ScopeOfflineAccess}); err != nil {
			t.Errorf("connection of %s: the stored refresh token does not work: %v", w.name, err)
		}
	}
	for i := range numTenants {
		if rotations[tenantID(i)] != refreshes[tenantID(i)] {
			t.Errorf("tenant %d: %d refreshes answered by Entra but %d rotations stored", i, refreshes[tenantID(i)], rotations[tenantID(i)])
		}
	}
}

func (h *harness) dumpLogs(reps []*replica) {
	for _, r := range reps {
		h.t.Logf("---- %s (last lines of its log) ----\n%s", r.id, tail(r.log, 30))
	}
}

// ---- poll log ----

// installPollLog adds, in the test's own schema, a table and a trigger that
// record every poll as the database sees it: when FinishPoll moves a
// monitor's last_poll_at, which monitor, when, and which replica held the
// lease. Exact, unlike sampling, even when the machine is busy.
func (h *harness) installPollLog() {
	h.t.Helper()
	for _, stmt := range []string{
		`CREATE TABLE poll_log (monitor_id TEXT NOT NULL, owner TEXT NOT NULL, polled_at BIGINT NOT NULL)`,
		`CREATE FUNCTION log_poll() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			INSERT INTO poll_log (monitor_id, owner, polled_at) VALUES (NEW.id, OLD.lease_owner, NEW.last_poll_at);
			RETURN NEW;
		END $$`,
		`CREATE TRIGGER monitors_log_poll AFTER UPDATE OF last_poll_at ON monitors
			FOR EACH ROW WHEN (NEW.last_poll_at <> OLD.last_poll_at) EXECUTE FUNCTION log_poll()`,
	} {
		if _, err := h.db.Exec(stmt); err != nil {
			h.t.Fatalf("install poll log: %v", err)
		}
	}
}

type pollRec struct {
	monitor, owner string
	at             time.Time
}

func (h *harness) pollLog() ([]pollRec, error) {
	rows, err := h.db.Query(`SELECT monitor_id, owner, polled_at FROM poll_log ORDER BY monitor_id, polled_at`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []pollRec
	for rows.Next() {
		var r pollRec
		var ns int64
		if err := rows.Scan(&r.monitor, &r.owner, &ns); err != nil {
			return nil, err
		}
		r.at = time.Unix(0, ns)
		out = append(out, r)
	}
	return out, rows.Err()
}

type analysis struct {
	monitors     map[string]bool
	polls        int            // in the window
	byOwner      map[string]int // polls in the window per replica
	ordinaryMax  time.Duration  // longest gap between two polls, the first by a replica still alive at the second
	ordinaryLate int            // such gaps longer than two intervals
	// phaseMax: the longest ordinary gap ending in each phase: before
	// the first replica went away, between, after the last.
	phaseMax []time.Duration
	// takeover: gone replica → the longest time from its going away to
	// the next poll of a monitor (any monitor; the end if none came).
	takeover map[string]time.Duration
	// leased: the same, over the monitors whose poll it had in flight
	// (claimed, not finished) when it went away.
	leased     map[string]time.Duration
	afterDeath []string // polls made by a replica after it went away
}

// analyse reads the poll log of the window [from, end]. gone says when a
// replica was killed or stopped, inFlight which monitors' leases it held
// then.
func analyse(log []pollRec, from, end time.Time, gone map[string]time.Time, inFlight map[string]map[string]bool) analysis {
	a := analysis{monitors: map[string]bool{}, byOwner: map[string]int{}, takeover: map[string]time.Duration{}, leased: map[string]time.Duration{},
		phaseMax: make([]time.Duration, len(gone)+1)}
	for i := 0; i < len(log); {
		j := i
		for j < len(log) && log[j].monitor == log[i].monitor {
			j++
		}
		polls := log[i:j]
		i = j
		a.monitors[polls[0].monitor] = true
		for k, p := range polls {
			if p.at.Before(from) || p.at.After(end) {
				continue
			}
			a.polls++
			a.byOwner[p.owner]++
			if at, ok := gone[p.owner]; ok && p.at.After(at) {
				a.afterDeath = append(a.afterDeath, fmt.Sprintf("%s polled %s at +%s", p.owner, p.monitor, p.at.Sub(from).Round(time.Millisecond)))
			}
			if k == 0 {
				continue
			}
			if at, ok := gone[polls[k-1].owner]; ok && p.at.After(at) {
				continue // a takeover, measured below
			}
			d := p.at.Sub(polls[k-1].at)
			a.ordinaryMax = max(a.ordinaryMax, d)
			ph := 0
			for _, at := range gone {
				if p.at.After(at) {
					ph++
				}
			}
			a.phaseMax[ph] = max(a.phaseMax[ph], d)
			if d > 2*interval {
				a.ordinaryLate++
			}
		}
		for owner, at := range gone {
			next := end
			if k := slices.IndexFunc(polls, func(p pollRec) bool { return p.at.After(at) }); k >= 0 {
				next = polls[k].at
			}
			a.takeover[owner] = max(a.takeover[owner], next.Sub(at))
			if inFlight[owner][polls[0].monitor] {
				a.leased[owner] = max(a.leased[owner], next.Sub(at))
			}
		}
	}
	return a
}

// ---- emulator stats ----

func toolCalls(s emulator.Stats, tool string) int {
	n := 0
	for _, t := range s.Tenants {
		n += t.Tools[tool].Count
	}
	return n
}

// refreshesPerConnection: refresh-token grants per sign-in session, i.e.
// per Clarion connection.
func refreshesPerConnection(s emulator.Stats) []int {
	var out []int
	for i := range numTenants {
		for _, c := range s.Tenant(tenantID(i)).Sessions {
			out = append(out, c.Count)
		}
	}
	return out
}

func refreshesPerTenant(s emulator.Stats) map[string]int {
	out := map[string]int{}
	for i := range numTenants {
		out[tenantID(i)] = s.Tenant(tenantID(i)).Grants["refresh_token"].Count
	}
	return out
}

// ---- small helpers ----

func post(t *testing.T, url, token string, body any) (int, string) {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	return resp.StatusCode, string(msg)
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// logSummary counts a replica's warnings and errors by message.
func logSummary(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	counts := map[string]int{}
	for line := range strings.Lines(string(b)) {
		lvl := ""
		switch {
		case strings.Contains(line, "level=WARN"):
			lvl = "WARN"
		case strings.Contains(line, "level=ERROR"):
			lvl = "ERROR"
		default:
			continue
		}
		msg := line
		if i := strings.Index(line, "msg="); i >= 0 {
			msg = line[i+4:]
			if strings.HasPrefix(msg, `"`) {
				if j := strings.Index(msg[1:], `"`); j >= 0 {
					msg = msg[1 : j+1]
				}
			} else if j := strings.IndexByte(msg, ' '); j >= 0 {
				msg = msg[:j]
			}
		}
		counts[lvl+" "+strings.TrimSpace(msg)]++
	}
	if len(counts) == 0 {
		return "no warnings or errors"
	}
	var out []string
	for m, n := range counts {
		out = append(out, fmt.Sprintf("%d× %s", n, m))
	}
	slices.Sort(out)
	return strings.Join(out, "; ")
}
