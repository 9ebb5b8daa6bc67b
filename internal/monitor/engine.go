// Package monitor owns the monitor engine: it polls every enabled Sentinel
// incidents monitor about once an interval, forward-only and deduplicated,
// turns new incidents into Clarion alerts, and keeps each monitor's sync
// health.
//
// Shape (after Prometheus's scrape manager and miniflux's scheduler): a
// manager reconciles one goroutine per feed with the store (start new, stop
// removed, restart changed). A feed is the enabled monitors of one Clarion
// workspace that watch one Sentinel workspace: they read the same table
// under the same delegated sign-in, so each interval one query sweep serves
// them all and each monitor applies its own filters and creation time to
// the shared pages. Feeds are never shared across Clarion workspaces: two
// workspaces connected to one tenant are two sign-ins, maybe with different
// permissions.
//
// Each loop waits for its feed's next due time — spread by a stable phase,
// never in lock-step — then claims the due monitors' leases in the store,
// so that across several replicas exactly one polls each monitor, and runs
// one sweep under its own timeout. A poll error never kills its loop.
package monitor

import (
	"cmp"
	"context"
	"errors"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/clarion/sentinel/internal/store"
)

// Config tunes the engine. Zero fields take the defaults of withDefaults.
type Config struct {
	Owner           string        // this replica's lease owner id
	Interval        time.Duration // poll interval (default 60s)
	Lookback        time.Duration // re-read window behind the watermark (default 15m)
	PageSize        int           // rows per query page (default 1000, as config's)
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
		c.PageSize = 1000
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

	mu    sync.Mutex
	loops map[feedKey]*loop

	// The throttle gate has its own lock: the reconcile holds mu while it
	// waits for a stopped loop to end, and a loop ending its poll may be
	// asking the gate (one lock for both deadlocked the engine).
	throttleMu sync.Mutex
	throttle   map[string]time.Time // tenant id → no request before this time

	unconfirmedMu sync.Mutex
	unconfirmed   map[feedKey]unconfirmedAnswer // see noteUnconfirmed
	wg            sync.WaitGroup
}

type loop struct {
	version  string // the feed's monitors and their UpdatedAt when the loop started
	feed     feedKey
	monitors int // how many enabled monitors the feed had then
	cancel   context.CancelFunc
	wake     chan struct{}
	done     chan struct{}
}

// feedKey names a feed: one Clarion workspace's monitors of one Sentinel
// workspace (whose id the integration stores lower-cased).
type feedKey struct{ workspace, sentinel string }

func keyOf(m store.Monitor) feedKey { return feedKey{m.WorkspaceID, m.SentinelWorkspaceID} }

// String is the feed's stable name: its phase hashes it.
func (k feedKey) String() string { return k.workspace + "/" + k.sentinel }

// New builds an engine; Run starts it.
func New(cfg Config, st store.Store, src Source) *Engine {
	cfg = cfg.withDefaults()
	return &Engine{
		cfg:      cfg,
		store:    st,
		source:   src,
		log:      cfg.Logger.With("component", "monitor"),
		reload:   make(chan struct{}, 1),
		loops:    make(map[feedKey]*loop),
		throttle: make(map[string]time.Time),

		unconfirmed: make(map[feedKey]unconfirmedAnswer),
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

// Wake makes the loops of a Clarion workspace re-check their feeds at once
// (after a reconnect, so polling resumes without waiting an interval).
// Only that workspace's loops wake: a woken loop claims its leases (a
// write) and reads its monitors, so waking every loop made each connect
// cost two queries per monitor of every workspace (clarion bench: at 1,000
// monitors, connecting a workspace took ten times longer).
func (e *Engine) Wake(workspaceID string) {
	e.Reload()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, l := range e.loops {
		if l.feed.workspace != workspaceID {
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
	feeds := make(map[feedKey][]store.Monitor)
	for _, m := range ms {
		feeds[keyOf(m)] = append(feeds[keyOf(m)], m)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for k, l := range e.loops {
		if ms, ok := feeds[k]; !ok || version(ms) != l.version {
			l.cancel()
			<-l.done
			delete(e.loops, k)
		}
	}
	for k, ms := range feeds {
		if _, ok := e.loops[k]; ok {
			continue
		}
		due := ms[0].NextPollAt
		for _, m := range ms[1:] {
			if m.NextPollAt.Before(due) {
				due = m.NextPollAt
			}
		}
		lctx, cancel := context.WithCancel(ctx)
		l := &loop{version: version(ms), feed: k, monitors: len(ms), cancel: cancel, wake: make(chan struct{}, 1), done: make(chan struct{})}
		e.loops[k] = l
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			defer close(l.done)
			e.runLoop(lctx, l, due)
		}()
	}
	return nil
}

// version identifies a feed's configuration: a monitor added, removed or
// changed restarts the feed's loop.
func version(ms []store.Monitor) string {
	h := fnv.New64a()
	for _, m := range ms {
		h.Write([]byte(m.ID))
		h.Write([]byte(m.UpdatedAt.Format(time.RFC3339Nano)))
	}
	return strconv.FormatUint(h.Sum64(), 16) + "/" + strconv.Itoa(len(ms))
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

// Running reports how many monitors the running loops poll (tests, metrics).
func (e *Engine) Running() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, l := range e.loops {
		n += l.monitors
	}
	return n
}

// nextSlot is the first time after t on the grid of the feed named key.
func (e *Engine) nextSlot(key string, t time.Time) time.Time {
	return slotAfter(e.cfg.Interval, key, t)
}

// slotAfter is the first time after t on a phase grid: every interval, at
// a stable offset (a hash of the key) so that feeds never poll in
// lock-step.
func slotAfter(interval time.Duration, key string, t time.Time) time.Time {
	h := fnv.New64a()
	h.Write([]byte(key))
	base := t.Truncate(interval).Add(time.Duration(h.Sum64() % uint64(interval)))
	for !base.After(t) {
		base = base.Add(interval)
	}
	return base
}

// NextSlot is when a monitor's feed polls next after t, on an engine with
// this interval (clarion bench seeds monitors on their slots).
func NextSlot(interval time.Duration, m store.Monitor, t time.Time) time.Time {
	return slotAfter(interval, keyOf(m).String(), t)
}

func (e *Engine) runLoop(ctx context.Context, l *loop, due time.Time) {
	log := e.log.With("workspace_id", l.feed.workspace, "sentinel_workspace_id", l.feed.sentinel)
	for {
		if d := due.Sub(e.now()); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-l.wake:
				t.Stop()
			case <-t.C:
			}
		}
		if ctx.Err() != nil {
			return
		}
		next, polled, err := e.pollFeed(ctx, l.feed)
		if err != nil && ctx.Err() == nil {
			log.Warn("poll", "err", err)
		}
		if polled < l.monitors {
			// Some monitors were not ours or not due (another replica holds
			// them, or they keep a schedule of their own for now): wake for
			// the earliest of them too.
			if other := e.storedDue(ctx, l.feed); next.IsZero() || (!other.IsZero() && other.Before(next)) {
				next = other
			}
		}
		if next.IsZero() {
			next = e.now().Add(e.cfg.Interval / 4)
		}
		due = next
	}
}

// storedDue is when the feed's stored schedule next asks for a poll here:
// the earliest due time of its monitors, or the end of another replica's
// lease on one. Never now or before (a claim just failed): then a little
// later. Zero if the feed has no enabled monitor left (the reconcile drops
// the loop) or the store could not be read.
func (e *Engine) storedDue(ctx context.Context, k feedKey) time.Time {
	ms, err := e.store.ListMonitors(ctx, k.workspace)
	if err != nil {
		return time.Time{}
	}
	var due time.Time
	for _, m := range ms {
		if !m.Enabled || keyOf(m) != k {
			continue
		}
		next := m.NextPollAt
		if m.LeaseOwner != "" && m.LeaseOwner != e.cfg.Owner && m.LeaseUntil.After(next) {
			next = m.LeaseUntil
		}
		if due.IsZero() || next.Before(due) {
			due = next
		}
	}
	if now := e.now(); !due.IsZero() && !due.After(now) {
		due = now.Add(min(e.cfg.Interval/4, 5*time.Second))
	}
	return due
}

// PollFeed claims the due and free monitors of one Clarion workspace's
// Sentinel workspace and, if there are any, polls them once together (see
// pollClaimed). A zero time means it polled nothing.
func (e *Engine) PollFeed(ctx context.Context, workspaceID, sentinelWorkspaceID string) (time.Time, error) {
	next, _, err := e.pollFeed(ctx, feedKey{workspaceID, sentinelWorkspaceID})
	return next, err
}

func (e *Engine) pollFeed(ctx context.Context, k feedKey) (time.Time, int, error) {
	now := e.now()
	// The claim is not cancelled with ctx: a cancelled statement may still
	// commit on the server after the call returned, leaving leases that
	// the shutdown's ReleaseLeases (run once the loops are gone) has
	// already passed. Waiting for the answer keeps the claim before it.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), claimTimeout)
	ms, err := e.store.ClaimFeed(cctx, k.workspace, k.sentinel, e.cfg.Owner, now, now.Add(e.cfg.LeaseTTL))
	cancel()
	if err != nil || len(ms) == 0 {
		return time.Time{}, 0, err
	}
	next, err := e.pollClaimed(ctx, ms)
	return next, len(ms), err
}

// PollOnce claims one monitor and, if it is due and free, polls it once on
// its own, records its health and schedules its next poll, which it
// returns. A zero time means it did not poll (not due, or another replica
// holds it). The loops poll whole feeds (PollFeed); this is for tests and
// tools that drive one monitor.
func (e *Engine) PollOnce(ctx context.Context, monitorID string) (time.Time, error) {
	now := e.now()
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), claimTimeout) // see pollFeed
	m, ok, err := e.store.ClaimPoll(cctx, monitorID, e.cfg.Owner, now, now.Add(e.cfg.LeaseTTL))
	cancel()
	if err != nil || !ok {
		return time.Time{}, err
	}
	return e.pollClaimed(ctx, []store.Monitor{m})
}

// pollClaimed polls monitors of one feed whose leases this engine holds:
// one sweep for all of them, then each one's health and the feed's next
// due time, shared so that they stay together, which it returns.
func (e *Engine) pollClaimed(ctx context.Context, ms []store.Monitor) (time.Time, error) {
	now := e.now()
	k := keyOf(ms[0])
	log := e.log.With("workspace_id", k.workspace, "sentinel_workspace_id", k.sentinel, "monitors", len(ms))
	// Keep the (short) leases while this poll runs; lctx ends if other
	// replicas took every monitor over, so that this poll stops calling
	// Microsoft (its writes would be refused anyway: ErrLeaseLost).
	leases := e.keepLeases(ctx, ms)
	defer leases.stop()
	lctx := leases.ctx

	subs := make([]*subscriber, len(ms))
	for i, m := range ms {
		subs[i] = e.subscribe(m)
	}
	var res feedResult
	var perr error
	conn, cerr := e.store.GetConnection(ctx, k.workspace)
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
			res, perr = e.sweep(pctx, conn, subs, leases)
			cancel()
			if cause := context.Cause(lctx); perr != nil && errors.Is(cause, store.ErrLeaseLost) {
				perr = cause
			}
		}
	}

	polledAt := e.now()
	var next time.Time
	var failing outcome
	if perr == nil {
		next = e.nextSlot(k.String(), polledAt)
		if res.more {
			next = polledAt // the sweep was cut by the page budget: go on at once
		}
		log.Debug("polled", "pages", res.pages)
	} else {
		if ctx.Err() != nil {
			// Stopped (monitor deleted, disconnect, shutdown): write nothing more.
			return time.Time{}, ctx.Err()
		}
		failing = classifyPollError(perr)
		failures := 0
		for _, s := range subs {
			failures = max(failures, s.m.Health.ConsecutiveFailures+1)
		}
		switch {
		case failing.paused:
			next = e.nextSlot(k.String(), polledAt)
		case failing.retryAfter > 0:
			until := e.markThrottled(tenant, polledAt, failing.retryAfter)
			next = until.Add(e.jitter(e.cfg.Interval / 10))
		default:
			// One backoff for the feed (its worst monitor's), so that its
			// monitors stay on one schedule and keep sharing the query.
			next = polledAt.Add(e.backoff(failures))
		}
		log.Warn("poll failed", "code", failing.code, "consecutive_failures", failures, "err", perr)
	}
	leases.stop() // no renewal may race the release
	var ferr error
	finished := 0
	for _, s := range subs {
		if leases.lost(s.m.ID) {
			ferr = cmp.Or(ferr, error(store.ErrLeaseLost))
			continue
		}
		finished++
		h := s.m.Health
		h.LastPollAt = polledAt
		h.Counts = s.counts
		if perr == nil {
			h.Status = store.HealthHealthy
			h.LastSuccessAt = polledAt
			h.LastError, h.LastErrorCode = "", ""
			h.ConsecutiveFailures = 0
		} else {
			h.Status, h.LastErrorCode, h.LastError = failing.status, failing.code, failing.sentence
			h.ConsecutiveFailures++
		}
		if err := e.store.FinishPoll(ctx, s.m.ID, e.cfg.Owner, h, next); err != nil {
			ferr = cmp.Or(ferr, err)
		}
	}
	switch {
	case finished == 0:
		// Every monitor went to other replicas: nothing here is scheduled.
		return time.Time{}, cmp.Or(perr, ferr)
	case perr != nil:
		return next, perr
	}
	return next, ferr
}

// claimTimeout bounds one claim, which ignores the caller's
// cancellation (see PollOnce).
const claimTimeout = 10 * time.Second

// keepLeases renews the poll leases of a poll's monitors every LeaseTTL/3
// until stop is called. A lease is short (LeaseTTL, half an interval by
// default) so that when a replica dies mid-poll, another takes its
// monitors over at most LeaseTTL after their slot, well within two
// intervals; renewing them lets a poll run longer than that (up to
// PollTimeout) without being taken over.
//
// A monitor whose lease the store says is lost (it lapsed and another
// replica claimed it, or the monitor was deleted) is dropped from the poll
// (lost reports it); when every lease is lost, the leases' context ends
// with store.ErrLeaseLost as the cause. A renewal failing for another
// reason (database briefly unreachable) is retried at the next tick: a
// lease lapses only if that lasts longer than LeaseTTL.
func (e *Engine) keepLeases(ctx context.Context, ms []store.Monitor) *leaseSet {
	lctx, cancel := context.WithCancelCause(ctx)
	ls := &leaseSet{ctx: lctx, cancel: cancel, held: len(ms), gone: make(map[string]bool),
		quit: make(chan struct{}), stopped: make(chan struct{})}
	go func() {
		defer close(ls.stopped)
		t := time.NewTicker(max(e.cfg.LeaseTTL/3, 10*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-ls.quit:
				return
			case <-lctx.Done():
				return
			case <-t.C:
			}
			for _, m := range ms {
				if ls.lost(m.ID) {
					continue
				}
				err := e.store.RenewLease(lctx, m.ID, e.cfg.Owner, e.now().Add(e.cfg.LeaseTTL))
				switch {
				case errors.Is(err, store.ErrLeaseLost):
					e.log.Warn("poll lease lost to another replica; dropping the monitor from this poll", "monitor_id", m.ID)
					ls.drop(m.ID)
				case err != nil && lctx.Err() == nil:
					e.log.Warn("renew poll lease", "monitor_id", m.ID, "err", err)
				}
			}
		}
	}()
	return ls
}

// leaseSet is the poll leases one poll holds.
type leaseSet struct {
	ctx     context.Context // ends when every lease is lost, or at stop
	cancel  context.CancelCauseFunc
	quit    chan struct{}
	stopped chan struct{}
	once    sync.Once

	mu   sync.Mutex
	held int
	gone map[string]bool
}

// drop records that the monitor's lease is lost: its writes are refused
// from now on, and this poll leaves it alone.
func (ls *leaseSet) drop(id string) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.gone[id] {
		return
	}
	ls.gone[id] = true
	if ls.held--; ls.held == 0 {
		ls.cancel(store.ErrLeaseLost)
	}
}

func (ls *leaseSet) lost(id string) bool {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.gone[id]
}

// stop ends the renewals (and waits for one in flight); the leases stay
// held until FinishPoll releases them.
func (ls *leaseSet) stop() {
	ls.once.Do(func() {
		close(ls.quit)
		<-ls.stopped
		ls.cancel(nil)
	})
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
	e.throttleMu.Lock()
	defer e.throttleMu.Unlock()
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
	e.throttleMu.Lock()
	defer e.throttleMu.Unlock()
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
