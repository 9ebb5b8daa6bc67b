// Package monitor owns the monitor engine: it polls every enabled Sentinel
// incidents monitor about once an interval, forward-only and deduplicated,
// turns new incidents into Clarion alerts, and keeps each monitor's sync
// health.
//
// Shape (after Prometheus's scrape manager and miniflux's scheduler): a
// manager reconciles one goroutine per enabled monitor with the store (start
// new, stop removed, restart changed). Each loop waits for its monitor's next
// due time — spread by a stable phase, never in lock-step — then claims the
// monitor's lease in the store, so that across several replicas exactly one
// polls it, and runs one poll under its own timeout. A poll error never kills
// its loop.
package monitor

import (
	"context"
	"errors"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/clarion/sentinel/internal/store"
)

// Config tunes the engine. Zero fields take the defaults of withDefaults.
type Config struct {
	Owner           string        // this replica's lease owner id
	Interval        time.Duration // poll interval (default 60s)
	Lookback        time.Duration // re-read window behind the watermark (default 15m)
	PageSize        int           // rows per query page (default 200)
	MaxPagesPerPoll int           // page budget of one poll (default 20)
	PollTimeout     time.Duration // one poll's deadline (default max(interval, 30s))
	LeaseTTL        time.Duration // poll lease length unless renewed (default interval/2, at least 1s; see keepLease)
	ReconcileEvery  time.Duration // how often the store is re-read for changes (default 10s)
	MaxBackoff      time.Duration // cap on the failure backoff (default min(10 intervals, 10m))
	PortalHosts     []string      // hosts deep links may point at
	Now             func() time.Time
	Logger          *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Interval <= 0 {
		c.Interval = 60 * time.Second
	}
	if c.Lookback < 0 {
		c.Lookback = 0
	}
	if c.PageSize <= 0 {
		c.PageSize = 200
	}
	if c.MaxPagesPerPoll <= 0 {
		c.MaxPagesPerPoll = 20
	}
	if c.PollTimeout <= 0 {
		c.PollTimeout = max(c.Interval, 30*time.Second)
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = max(c.Interval/2, time.Second)
	}
	if c.ReconcileEvery <= 0 {
		c.ReconcileEvery = 10 * time.Second
	}
	if c.MaxBackoff <= 0 {
		// Ten intervals, at most ten minutes: a failing monitor keeps
		// trying often enough to recover within minutes of Microsoft.
		c.MaxBackoff = min(10*c.Interval, 10*time.Minute)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Owner == "" {
		c.Owner = store.NewID()
	}
	return c
}

// Engine runs the monitor loops of one replica.
type Engine struct {
	cfg    Config
	store  store.Store
	source Source
	log    *slog.Logger

	reload chan struct{} // coalesced reload signals

	mu       sync.Mutex
	loops    map[string]*loop
	throttle map[string]time.Time // tenant id → no request before this time
	wg       sync.WaitGroup
}

type loop struct {
	version   time.Time // the monitor's UpdatedAt when the loop started
	workspace string    // the monitor's Clarion workspace (Wake)
	cancel    context.CancelFunc
	wake      chan struct{}
	done      chan struct{}
}

// New builds an engine; Run starts it.
func New(cfg Config, st store.Store, src Source) *Engine {
	cfg = cfg.withDefaults()
	return &Engine{
		cfg:      cfg,
		store:    st,
		source:   src,
		log:      cfg.Logger.With("component", "monitor"),
		reload:   make(chan struct{}, 1),
		loops:    make(map[string]*loop),
		throttle: make(map[string]time.Time),
	}
}

// Owner is the lease owner id of this engine.
func (e *Engine) Owner() string { return e.cfg.Owner }

func (e *Engine) now() time.Time { return e.cfg.Now() }

// Reload asks the engine to re-read the monitors now (after a monitor was
// added, changed or deleted, or a connection changed). It never blocks;
// signals coalesce.
func (e *Engine) Reload() {
	select {
	case e.reload <- struct{}{}:
	default:
	}
}

// Wake makes the loops of a Clarion workspace re-check their monitor at once
// (after a reconnect, so polling resumes without waiting an interval).
// Only that workspace's loops wake: a woken loop claims its lease (a write)
// and reads its monitor, so waking every loop made each connect cost two
// queries per monitor of every workspace (clarion bench: at 1,000 monitors,
// connecting a workspace took ten times longer).
func (e *Engine) Wake(workspaceID string) {
	e.Reload()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, l := range e.loops {
		if l.workspace != workspaceID {
			continue
		}
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

// Run reconciles and runs the loops until ctx ends, then stops every loop,
// waits for polls in flight to end and hands the leases back.
func (e *Engine) Run(ctx context.Context) error {
	t := time.NewTicker(e.cfg.ReconcileEvery)
	defer t.Stop()
	for {
		if err := e.reconcile(ctx); err != nil && ctx.Err() == nil {
			e.log.Warn("reconcile monitors", "err", err)
		}
		select {
		case <-ctx.Done():
			e.stopAll()
			rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := e.store.ReleaseLeases(rctx, e.cfg.Owner); err != nil {
				e.log.Warn("release leases", "err", err)
			}
			return nil
		case <-t.C:
		case <-e.reload:
		}
	}
}

func (e *Engine) reconcile(ctx context.Context) error {
	ms, err := e.store.ListEnabledMonitors(ctx)
	if err != nil {
		return err
	}
	want := make(map[string]store.Monitor, len(ms))
	for _, m := range ms {
		want[m.ID] = m
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for id, l := range e.loops {
		m, ok := want[id]
		if !ok || !m.UpdatedAt.Equal(l.version) {
			l.cancel()
			<-l.done
			delete(e.loops, id)
		}
	}
	for id, m := range want {
		if _, ok := e.loops[id]; ok {
			continue
		}
		lctx, cancel := context.WithCancel(ctx)
		l := &loop{version: m.UpdatedAt, workspace: m.WorkspaceID, cancel: cancel, wake: make(chan struct{}, 1), done: make(chan struct{})}
		e.loops[id] = l
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			defer close(l.done)
			e.runLoop(lctx, m, l.wake)
		}()
	}
	return nil
}

func (e *Engine) stopAll() {
	e.mu.Lock()
	for id, l := range e.loops {
		l.cancel()
		delete(e.loops, id)
	}
	e.mu.Unlock()
	e.wg.Wait()
}

// Running reports how many monitor loops are running (tests, metrics).
func (e *Engine) Running() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.loops)
}

// phase is the monitor's stable offset inside the interval.
func (e *Engine) phase(id string) time.Duration {
	h := fnv.New64a()
	h.Write([]byte(id))
	return time.Duration(h.Sum64() % uint64(e.cfg.Interval))
}

// nextSlot is the first time after t on the monitor's phase grid.
func (e *Engine) nextSlot(id string, t time.Time) time.Time {
	iv := e.cfg.Interval
	ph := e.phase(id)
	base := t.Truncate(iv).Add(ph)
	for !base.After(t) {
		base = base.Add(iv)
	}
	return base
}

func (e *Engine) runLoop(ctx context.Context, m store.Monitor, wake <-chan struct{}) {
	log := e.log.With("monitor_id", m.ID, "workspace_id", m.WorkspaceID)
	due := m.NextPollAt
	for {
		if d := due.Sub(e.now()); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-wake:
				t.Stop()
			case <-t.C:
			}
		}
		if ctx.Err() != nil {
			return
		}
		next, err := e.PollOnce(ctx, m.ID)
		if err != nil && ctx.Err() == nil {
			log.Warn("poll", "err", err)
		}
		if next.IsZero() {
			// Not ours or not due: look again at the stored schedule.
			cur, err := e.store.GetMonitor(ctx, m.WorkspaceID, m.ID)
			switch {
			case errors.Is(err, store.ErrNotFound):
				return // deleted; the reconcile will drop the loop
			case err != nil:
				next = e.now().Add(e.cfg.Interval / 4)
			default:
				next = cur.NextPollAt
				if cur.LeaseOwner != "" && cur.LeaseOwner != e.cfg.Owner && cur.LeaseUntil.After(next) {
					next = cur.LeaseUntil
				}
				if !next.After(e.now()) {
					next = e.now().Add(min(e.cfg.Interval/4, 5*time.Second))
				}
			}
		}
		due = next
	}
}

// PollOnce claims the monitor and, if it is due and free, polls it once,
// records its health and schedules its next poll, which it returns. A zero
// time means it did not poll (not due, or another replica holds it).
func (e *Engine) PollOnce(ctx context.Context, monitorID string) (time.Time, error) {
	now := e.now()
	// The claim is not cancelled with ctx: a cancelled statement may still
	// commit on the server after the call returned, leaving a lease that
	// the shutdown's ReleaseLeases (run once the loops are gone) has
	// already passed. Waiting for the answer keeps the claim before it.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), claimTimeout)
	m, ok, err := e.store.ClaimPoll(cctx, monitorID, e.cfg.Owner, now, now.Add(e.cfg.LeaseTTL))
	cancel()
	if err != nil || !ok {
		return time.Time{}, err
	}
	log := e.log.With("monitor_id", m.ID, "workspace_id", m.WorkspaceID)
	// Keep the (short) lease while this poll runs; lctx ends if another
	// replica took the monitor over, so that this poll stops calling
	// Microsoft (its writes would be refused anyway: ErrLeaseLost).
	lctx, stopLease := e.keepLease(ctx, m.ID)
	defer stopLease()

	var res pollResult
	var perr error
	conn, cerr := e.store.GetConnection(ctx, m.WorkspaceID)
	tenant := conn.TenantID
	switch {
	case cerr != nil:
		perr = cerr
		if errors.Is(cerr, store.ErrNotFound) {
			perr = errNotConnected
		}
	case conn.State == store.StateReconnectRequired:
		// No hammering: a dead grant is not retried until a person reconnects.
		perr = &pausedError{code: conn.StateCode, sentence: conn.StateReason}
	default:
		if until, throttled := e.throttledUntil(tenant, now); throttled {
			perr = throttledError{until.Sub(now)}
		} else {
			pctx, cancel := context.WithTimeout(lctx, e.cfg.PollTimeout)
			res, perr = e.poll(pctx, m)
			cancel()
			if cause := context.Cause(lctx); perr != nil && errors.Is(cause, store.ErrLeaseLost) {
				perr = cause
			}
		}
	}

	h := m.Health
	h.LastPollAt = e.now()
	h.Counts = res.counts
	var next time.Time
	if perr == nil {
		h.Status = store.HealthHealthy
		h.LastSuccessAt = h.LastPollAt
		h.LastError, h.LastErrorCode = "", ""
		h.ConsecutiveFailures = 0
		next = e.nextSlot(m.ID, h.LastPollAt)
		if res.more {
			next = h.LastPollAt // the sweep was cut by the page budget: go on at once
		}
		log.Debug("polled", "returned", res.counts.Returned, "ingested", res.counts.Ingested, "pages", res.pages)
	} else {
		if ctx.Err() != nil {
			// Stopped (monitor deleted, disconnect, shutdown): write nothing more.
			return time.Time{}, ctx.Err()
		}
		o := classifyPollError(perr)
		h.Status, h.LastErrorCode, h.LastError = o.status, o.code, o.sentence
		h.ConsecutiveFailures++
		switch {
		case o.paused:
			next = e.nextSlot(m.ID, h.LastPollAt)
		case o.retryAfter > 0:
			until := e.markThrottled(tenant, h.LastPollAt, o.retryAfter)
			next = until.Add(e.jitter(e.cfg.Interval / 10))
		default:
			next = h.LastPollAt.Add(e.backoff(h.ConsecutiveFailures))
		}
		log.Warn("poll failed", "code", o.code, "consecutive_failures", h.ConsecutiveFailures, "err", perr)
	}
	stopLease() // no renewal may race the release
	if err := e.store.FinishPoll(ctx, m.ID, e.cfg.Owner, h, next); err != nil {
		return time.Time{}, err
	}
	return next, perr
}

// claimTimeout bounds one ClaimPoll, which ignores the caller's
// cancellation (see PollOnce).
const claimTimeout = 10 * time.Second

// keepLease renews the monitor's poll lease every LeaseTTL/3 until stop is
// called. The lease is short (LeaseTTL, half an interval by default) so
// that when a replica dies mid-poll, another takes the monitor over at most
// LeaseTTL after its slot, well within two intervals; renewing it lets a
// poll run longer than that (up to PollTimeout) without being taken over.
//
// If the store says the lease is lost (it lapsed and another replica
// claimed it, or the monitor was deleted), keepLease cancels the returned
// context with store.ErrLeaseLost as the cause. A renewal failing for
// another reason (database briefly unreachable) is retried at the next
// tick: the lease lapses only if that lasts longer than LeaseTTL.
func (e *Engine) keepLease(ctx context.Context, monitorID string) (context.Context, func()) {
	lctx, cancel := context.WithCancelCause(ctx)
	quit, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(max(e.cfg.LeaseTTL/3, 10*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-lctx.Done():
				return
			case <-t.C:
			}
			err := e.store.RenewLease(lctx, monitorID, e.cfg.Owner, e.now().Add(e.cfg.LeaseTTL))
			switch {
			case errors.Is(err, store.ErrLeaseLost):
				e.log.Warn("poll lease lost to another replica; stopping this poll", "monitor_id", monitorID)
				cancel(err)
				return
			case err != nil && lctx.Err() == nil:
				e.log.Warn("renew poll lease", "monitor_id", monitorID, "err", err)
			}
		}
	}()
	var once sync.Once
	return lctx, func() {
		once.Do(func() {
			close(quit)
			<-stopped
			cancel(nil)
		})
	}
}

// backoff grows exponentially from a quarter interval, with jitter, capped.
func (e *Engine) backoff(failures int) time.Duration {
	d := e.cfg.Interval / 4
	for i := 1; i < failures && d < e.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, e.cfg.MaxBackoff)
	return d + e.jitter(d/5)
}

func (e *Engine) jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d)
}

// throttledUntil reports whether the tenant is inside a Retry-After window:
// every monitor of a throttled tenant waits, no other tenant does.
func (e *Engine) throttledUntil(tenant string, now time.Time) (time.Time, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	until, ok := e.throttle[tenant]
	if ok && now.Before(until) {
		return until, true
	}
	if ok {
		delete(e.throttle, tenant)
	}
	return time.Time{}, false
}

func (e *Engine) markThrottled(tenant string, now time.Time, d time.Duration) time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	until := now.Add(d)
	if cur, ok := e.throttle[tenant]; !ok || until.After(cur) {
		e.throttle[tenant] = until
	}
	return e.throttle[tenant]
}

var errNotConnected = errors.New("monitor: workspace not connected")

// pausedError: the connection is in reconnect_required; code and sentence
// are the connection's own (why the grant died, what to do).
type pausedError struct{ code, sentence string }

func (p *pausedError) Error() string { return "monitor: connection needs re-connect: " + p.code }

type throttledError struct{ wait time.Duration }

func (t throttledError) Error() string { return "monitor: tenant throttled" }

func classifyPollError(err error) outcome {
	var te throttledError
	switch {
	case errors.As(err, &te):
		o := classify(err)
		o.status, o.code, o.retryAfter = store.HealthThrottled, "throttled", te.wait
		o.sentence = "Microsoft is throttling requests for this tenant; waiting as asked before the next poll."
		return o
	case errors.Is(err, errNotConnected):
		return outcome{status: store.HealthPaused, code: "not_connected", paused: true,
			sentence: "This Clarion workspace is not connected to Microsoft Sentinel."}
	}
	var pe *pausedError
	if errors.As(err, &pe) {
		o := outcome{status: store.HealthPaused, code: "reconnect_required", paused: true,
			sentence: "The Sentinel connection needs to be re-connected; polling is paused until then."}
		if pe.code != "" {
			o.code = pe.code
		}
		if pe.sentence != "" {
			o.sentence = pe.sentence
		}
		return o
	}
	return classify(err)
}
