package bench

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/clarion/sentinel/internal/app"
	"github.com/clarion/sentinel/internal/config"
	"github.com/clarion/sentinel/internal/emulator"
	"github.com/clarion/sentinel/internal/monitor"
	"github.com/clarion/sentinel/internal/store"
)

// owner is the lease owner id of the bench's Clarion.
const owner = "bench-replica"

// clarion is one Clarion replica wired as `clarion serve` wires it
// (app.New), serving its HTTP surface on loopback, with its monitor engine
// built exactly as app.New builds it over app.Upstream, but reading and
// writing through a recorder, so that poll starts and alert commits are
// timed where they happen instead of being inferred from outside.
type clarion struct {
	app *app.App
	url string
	rec *recorder
	eng *monitor.Engine

	srv     *http.Server
	srvDone chan error
	stopEng context.CancelFunc
	engDone chan error
}

func startClarion(ctx context.Context, dsn, dataDir, entraURL, mcpURL string, interval time.Duration, log *slog.Logger) (*clarion, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	cfg := config.Defaults()
	cfg.Addr = ln.Addr().String()
	cfg.DataDir = dataDir
	cfg.DatabaseURL = dsn
	cfg.EntraAuthority = entraURL
	cfg.SentinelMCPURL = mcpURL
	cfg.ClientID, cfg.ClientSecret = emulator.DefaultClientID, emulator.DefaultClientSecret
	cfg.PollInterval = interval
	cfg.ReplicaID = owner
	cfg.Migrate = true
	cfg.LogLevel = "warn"
	if err := cfg.Finish(); err != nil {
		ln.Close()
		return nil, err
	}
	a, err := app.New(ctx, cfg, log, app.Options{AutoMigrate: true, Owner: owner})
	if err != nil {
		ln.Close()
		return nil, err
	}
	c := &clarion{app: a, url: cfg.PublicURL, rec: newRecorder(a.Store)}
	// The same engine configuration as app.New's; only the store is wrapped.
	c.eng = monitor.New(monitor.Config{Owner: owner, Interval: cfg.PollInterval, Lookback: cfg.Lookback, PageSize: cfg.PageSize,
		PortalHosts: cfg.PortalHosts, Logger: log}, c.rec, &app.Upstream{Connections: a.Connections, Client: a.Sentinel})
	a.Integration.Engine = c.eng // monitor changes and reconnects wake this engine

	c.srv = &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	c.srv.RegisterOnShutdown(a.Web.Shutdown)
	c.srvDone = make(chan error, 1)
	go func() { c.srvDone <- c.srv.Serve(ln) }()
	ectx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.stopEng = cancel
	c.engDone = make(chan error, 1)
	go func() { c.engDone <- c.eng.Run(ectx) }()
	return c, nil
}

// stopEngine stops the monitor loops (polls in flight end first).
func (c *clarion) stopEngine() {
	if c.stopEng != nil {
		c.stopEng()
		<-c.engDone
		c.stopEng = nil
	}
}

// close shuts down in the order App.Run does: HTTP, monitors, the tool
// calls' audit records, the MCP sessions, store.
func (c *clarion) close() error {
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := c.srv.Shutdown(sctx)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	c.stopEngine()
	err = errors.Join(err, c.app.Tools.Close())
	_ = c.app.Sentinel.Close()
	return errors.Join(err, c.app.Store.Close())
}

// recorder wraps the engine's store: it notes when each poll claimed its
// monitor (and for which due time) and when each alert was first
// committed.
type recorder struct {
	store.Store

	mu      sync.Mutex
	claims  []claim
	track   map[string]bool      // incident ids whose first commit time is wanted
	commits map[string]time.Time // incident id → first commit seen

	lastCommit time.Time // the last commit that inserted an alert
	failures   []failure // polls that ended in an error

	inserted atomic.Int64 // alerts inserted by every commit
	pages    atomic.Int64
}

// failure is a poll that ended in an error, with the error's code.
type failure struct {
	At   time.Time
	Code string
}

func (r *recorder) FinishPoll(ctx context.Context, monitorID, owner string, h store.Health, next time.Time) error {
	if h.Status != store.HealthHealthy {
		r.mu.Lock()
		r.failures = append(r.failures, failure{At: time.Now(), Code: h.LastErrorCode})
		r.mu.Unlock()
	}
	return r.Store.FinishPoll(ctx, monitorID, owner, h, next)
}

// failuresAt counts the failed polls in [from, to) by error code.
func (r *recorder) failuresAt(from, to time.Time) map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for _, f := range r.failures {
		if !f.At.Before(from) && f.At.Before(to) {
			out[f.Code]++
		}
	}
	return out
}

// claim is one poll start: the lease was taken at At for a poll due at Due.
type claim struct {
	Monitor string
	Due     time.Time // the poll's due time (the monitor's next_poll_at)
	Start   time.Time // the engine asked for the lease
	At      time.Time // the lease was taken: the poll starts
}

func newRecorder(s store.Store) *recorder {
	return &recorder{Store: s, track: map[string]bool{}, commits: map[string]time.Time{}}
}

func (r *recorder) ClaimPoll(ctx context.Context, monitorID, owner string, now, leaseUntil time.Time) (store.Monitor, bool, error) {
	start := time.Now()
	m, ok, err := r.Store.ClaimPoll(ctx, monitorID, owner, now, leaseUntil)
	if ok && err == nil {
		at := time.Now()
		r.mu.Lock()
		r.claims = append(r.claims, claim{Monitor: monitorID, Due: m.NextPollAt, Start: start, At: at})
		r.mu.Unlock()
	}
	return m, ok, err
}

func (r *recorder) ClaimFeed(ctx context.Context, workspaceID, sentinelWorkspaceID, owner string, now, leaseUntil time.Time) ([]store.Monitor, error) {
	start := time.Now()
	ms, err := r.Store.ClaimFeed(ctx, workspaceID, sentinelWorkspaceID, owner, now, leaseUntil)
	if err == nil && len(ms) > 0 {
		at := time.Now()
		r.mu.Lock()
		for _, m := range ms {
			r.claims = append(r.claims, claim{Monitor: m.ID, Due: m.NextPollAt, Start: start, At: at})
		}
		r.mu.Unlock()
	}
	return ms, err
}

func (r *recorder) CommitPage(ctx context.Context, monitorID, owner string, alerts []store.Alert, p store.Progress) (int, error) {
	n, err := r.Store.CommitPage(ctx, monitorID, owner, alerts, p)
	if err != nil {
		return n, err
	}
	at := time.Now()
	r.inserted.Add(int64(n))
	r.pages.Add(1)
	r.mu.Lock()
	if n > 0 {
		r.lastCommit = at
	}
	if len(r.track) > 0 {
		for _, a := range alerts {
			if r.track[a.IncidentID] {
				if _, seen := r.commits[a.IncidentID]; !seen {
					r.commits[a.IncidentID] = at
				}
			}
		}
	}
	r.mu.Unlock()
	return n, nil
}

// claimsDue returns the poll starts whose due time lies in [from, to).
func (r *recorder) claimsDue(from, to time.Time) []claim {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []claim
	for _, c := range r.claims {
		if !c.Due.Before(from) && c.Due.Before(to) {
			out = append(out, c)
		}
	}
	return out
}

// claimsAt counts the poll starts in [from, to).
func (r *recorder) claimsAt(from, to time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.claims {
		if !c.At.Before(from) && c.At.Before(to) {
			n++
		}
	}
	return n
}

// polled reports how many of the monitors have been claimed at least once.
func (r *recorder) polled(ids map[string]bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[string]bool{}
	for _, c := range r.claims {
		if ids[c.Monitor] {
			seen[c.Monitor] = true
		}
	}
	return len(seen)
}

func (r *recorder) lastCommitAt() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastCommit
}

func (r *recorder) trackIncidents(ids []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		r.track[id] = true
	}
}

func (r *recorder) committed(id string) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.commits[id]
	return t, ok
}
