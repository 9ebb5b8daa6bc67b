package monitor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/clarion/sentinel/internal/connection"
	"github.com/clarion/sentinel/internal/sentinel"
	"github.com/clarion/sentinel/internal/store"
)

// Source runs one KQL query against the Sentinel workspace of a monitor,
// under conn, the connection of the monitor's Clarion workspace as the poll
// has just read it. The app wires it to the connection service (tokens)
// and the Sentinel MCP client.
type Source interface {
	QueryIncidents(ctx context.Context, conn store.Connection, m store.Monitor, kql string) (Page, error)
}

// Page is one answer to a poll query.
type Page struct {
	// Incidents are the rows that parsed, in the query's order.
	Incidents []sentinel.Incident
	// Rows is how many rows Microsoft returned (bad rows included), which
	// decides whether more pages follow.
	Rows int
	// Invalid are the rows that could not be read (no IncidentName or
	// CreatedTime): they cannot be deduplicated or ordered, so they are
	// counted and skipped rather than failing every poll forever.
	Invalid []error
}

// Alert text limits. The full text always stays in the payload; these only
// bound what list views and agents see first.
const (
	maxTitleBytes       = 1024
	maxDescriptionBytes = 64 << 10
)

// subscriber is one monitor of a feed during a sweep: where its own sweep
// starts, what it has seen and committed, and its counts for its health.
type subscriber struct {
	m store.Monitor
	// The monitor's own sweep: rows from start on (CreatedTime >= start),
	// or, when it resumes a sweep cut by the page budget, rows after its
	// cursor (afterTime, afterName): everything before it was committed.
	start            time.Time
	afterTime        time.Time
	afterName        string
	watermark        time.Time
	storedWatermark  time.Time // what the store holds, to tell a page
	storedCursor     time.Time // that changes nothing for this monitor
	storedCursorName string
	seen             map[string]bool
	counts           store.PollCounts
	alerts           []store.Alert // this page's
	progress         store.Progress
}

// subscribe sets up a claimed monitor's part of a sweep.
func (e *Engine) subscribe(m store.Monitor) *subscriber {
	s := &subscriber{m: m, start: m.CreatedAt, watermark: m.Watermark,
		storedWatermark: m.Watermark, storedCursor: m.CursorTime, storedCursorName: m.CursorName,
		seen: make(map[string]bool)}
	// Forward-only: never before the monitor existed.
	if lb := m.Watermark.Add(-e.cfg.Lookback); lb.After(s.start) {
		s.start = lb
	}
	if !m.CursorTime.IsZero() {
		s.afterTime, s.afterName = m.CursorTime, m.CursorName
		s.start = m.CursorTime
		if s.start.Before(m.CreatedAt) {
			s.start = m.CreatedAt
		}
	}
	return s
}

// wants reports whether a row is inside this monitor's own sweep.
func (s *subscriber) wants(inc sentinel.Incident) bool {
	if inc.CreatedTime.Before(s.start) {
		return false
	}
	return s.afterTime.IsZero() || keyAfter(inc, s.afterTime, s.afterName)
}

// before orders the subscribers' resume points: a start takes every row of
// its time, a cursor only those after it.
func (s *subscriber) before(o *subscriber) bool {
	if c := s.start.Compare(o.start); c != 0 {
		return c < 0
	}
	switch {
	case s.afterTime.IsZero():
		return !o.afterTime.IsZero()
	case o.afterTime.IsZero():
		return false
	}
	return s.afterName < o.afterName
}

// feedResult is what one sweep did, beyond each subscriber's counts.
type feedResult struct {
	pages int
	// more: the sweep stopped at its page budget with rows left; the next
	// poll resumes from the stored cursors and should come soon.
	more bool
}

// fetched is one page's answer.
type fetched struct {
	page Page
	err  error
}

// sweep runs one poll of a feed's claimed monitors: one sweep (or the rest
// of an interrupted one) over SecurityIncident, from the earliest resume
// point of its monitors, page by page; each monitor takes the rows of its
// own sweep that pass its filters. Each page is committed, every monitor's
// alerts and progress together, before the next is committed, so a crash
// at any point loses nothing and duplicates nothing: the store's unique key
// absorbs re-reads, and no cursor ever passes an uncommitted row.
//
// The next page is asked for while the current one commits (its cursor is
// known before): decoding a page and writing the previous one overlap, on
// two cores nearly halving a backlog's catch-up (clarion bench, burst). A
// failed commit drops the page asked for.
func (e *Engine) sweep(ctx context.Context, conn store.Connection, subs []*subscriber, leases *leaseSet) (feedResult, error) {
	var res feedResult
	now := e.now()
	first := subs[0]
	for _, s := range subs[1:] {
		if s.before(first) {
			first = s
		}
	}
	params := sentinel.PollParams{Start: first.start, AfterTime: first.afterTime, AfterName: first.afterName, PageSize: e.cfg.PageSize}
	fctx, cancelFetch := context.WithCancel(ctx)
	defer cancelFetch()
	fetch := func(p sentinel.PollParams) <-chan fetched {
		out := make(chan fetched, 1) // never blocks: a dropped fetch leaks nothing
		q, err := sentinel.PollQuery(p)
		if err != nil {
			out <- fetched{err: fmt.Errorf("monitor: build query: %w", err)}
			return out
		}
		go func() {
			page, err := e.source.QueryIncidents(fctx, conn, first.m, q)
			out <- fetched{page, err}
		}()
		return out
	}
	k := keyOf(first.m)
	pending := fetch(params)
	for {
		f := <-pending
		if f.err != nil {
			return res, f.err
		}
		page := f.page
		res.pages++
		incs := page.Incidents
		if !params.AfterTime.IsZero() && len(incs) > 0 && !keyAfter(incs[0], params.AfterTime, params.AfterName) {
			// The answer does not follow the cursor we sent (the same page
			// again, or paging ignored): stop here, keep what was committed.
			return res, ErrPagingStalled
		}
		if len(incs) > 0 && incs[0].CreatedTime.Before(params.Start.Truncate(100*time.Nanosecond)) {
			// Rows from before the sweep's start (the query asks for none;
			// Kusto keeps 100 ns ticks): an answer to another query.
			return res, ErrPagingStalled
		}
		if e.replayed(k, params, page) {
			// Microsoft answered with the page fetched ahead of a failed
			// commit, for another query: it skips rows never committed.
			return res, ErrPagingStalled
		}
		if len(page.Invalid) > 0 {
			e.log.Warn("skipped unreadable incident rows", "workspace_id", first.m.WorkspaceID,
				"sentinel_workspace_id", first.m.SentinelWorkspaceID, "count", len(page.Invalid), "first", page.Invalid[0])
		}
		// A full page means more may follow; a full page with no readable
		// row cannot move the cursor, so the sweep ends there.
		full := max(page.Rows, len(incs)) >= e.cfg.PageSize && len(incs) > 0
		var last sentinel.Incident
		if full {
			last = incs[len(incs)-1]
		}
		for _, s := range subs {
			if leases.lost(s.m.ID) {
				continue
			}
			s.counts.Invalid += invalidIn(s, page)
			e.take(s, incs, now)
			s.progress = store.Progress{Watermark: s.watermark}
			switch {
			case !full:
				// The sweep reached the end of the table: every monitor's is done.
			case s.wants(last):
				s.progress.CursorTime, s.progress.CursorName = last.CreatedTime, last.Name
			default:
				// The feed is still behind this monitor's own resume point.
				s.progress.CursorTime, s.progress.CursorName = s.storedCursor, s.storedCursorName
			}
		}
		more := full && res.pages < e.cfg.MaxPagesPerPoll
		if more {
			params = sentinel.PollParams{Start: last.CreatedTime, AfterTime: last.CreatedTime, AfterName: last.Name, PageSize: e.cfg.PageSize}
			pending = fetch(params)
		}
		if err := e.commit(ctx, subs, leases); err != nil {
			if more {
				e.noteUnconfirmed(k, params, pending)
			}
			return res, err
		}
		switch {
		case !full:
			e.forgetUnconfirmed(k)
			return res, nil
		case !more:
			res.more = true
			return res, nil
		}
	}
}

// An answer fetched ahead of a commit that then failed is the one answer
// Clarion has seen that lies beyond what it committed. Microsoft does not
// repeat answers, but an answer replayed for a later query (the
// repeat_answer fault of P08: a gateway repeating its last page) would
// then follow that query's cursor, pass the stall check, and move the
// cursors over rows never committed. So the engine remembers, per feed,
// such an answer and the query it answered until a sweep of the feed
// ends, and refuses it as the answer to any other query.
type unconfirmedAnswer struct {
	query       sentinel.PollParams
	rows        int
	first, last sentinel.Incident
}

// noteUnconfirmed waits for the answer fetched ahead (it is bounded by the
// poll's timeout) and remembers it.
func (e *Engine) noteUnconfirmed(k feedKey, query sentinel.PollParams, pending <-chan fetched) {
	f := <-pending
	if f.err != nil || len(f.page.Incidents) == 0 {
		return
	}
	incs := f.page.Incidents
	e.unconfirmedMu.Lock()
	defer e.unconfirmedMu.Unlock()
	e.unconfirmed[k] = unconfirmedAnswer{query: query, rows: f.page.Rows, first: incs[0], last: incs[len(incs)-1]}
}

func (e *Engine) forgetUnconfirmed(k feedKey) {
	e.unconfirmedMu.Lock()
	defer e.unconfirmedMu.Unlock()
	delete(e.unconfirmed, k)
}

// replayed reports whether page is the feed's unconfirmed answer given to
// another query. The same query may legitimately get the same answer (the
// poll after the failed commit asks it again): that confirms it.
func (e *Engine) replayed(k feedKey, query sentinel.PollParams, page Page) bool {
	e.unconfirmedMu.Lock()
	defer e.unconfirmedMu.Unlock()
	u, ok := e.unconfirmed[k]
	incs := page.Incidents
	if !ok || len(incs) == 0 || page.Rows != u.rows || !sameKey(incs[0], u.first) || !sameKey(incs[len(incs)-1], u.last) {
		return false
	}
	delete(e.unconfirmed, k)
	return !sameQuery(query, u.query)
}

func sameKey(a, b sentinel.Incident) bool {
	return a.Name == b.Name && a.CreatedTime.Equal(b.CreatedTime)
}

func sameQuery(a, b sentinel.PollParams) bool {
	return a.Start.Equal(b.Start) && a.AfterTime.Equal(b.AfterTime) && a.AfterName == b.AfterName && a.PageSize == b.PageSize
}

// invalidIn counts the page's unreadable rows that lie in the monitor's own
// sweep. Such a row has no key to place it by, so its place in the answer
// does: the rows come in key order, and a row belongs to the sweep of the
// monitors that want the readable row before it (or, first in the page,
// the readable row after it; all of them if none is readable). A monitor
// created after it then does not report a row it would never have read on
// its own.
func invalidIn(s *subscriber, page Page) int {
	n := 0
	for _, err := range page.Invalid {
		var re *sentinel.RowError
		if !errors.As(err, &re) || len(page.Incidents) == 0 {
			n++
			continue
		}
		// Readable rows before this one: its index less the unreadable
		// rows before it (Invalid is in the rows' order).
		before := re.Row
		for _, o := range page.Invalid {
			var ore *sentinel.RowError
			if errors.As(o, &ore) && ore.Row < re.Row {
				before--
			}
		}
		near := page.Incidents[min(max(before-1, 0), len(page.Incidents)-1)]
		if s.wants(near) {
			n++
		}
	}
	return n
}

// take sorts one page's rows into the subscriber: its counts, watermark
// and the alerts of the rows that pass its filters.
func (e *Engine) take(s *subscriber, incs []sentinel.Incident, now time.Time) {
	s.alerts = s.alerts[:0]
	for _, inc := range incs {
		if !s.wants(inc) {
			continue
		}
		if !s.seen[inc.Name] {
			s.seen[inc.Name] = true
			s.counts.Returned++
		}
		if inc.CreatedTime.After(s.watermark) {
			s.watermark = inc.CreatedTime
		}
		if inc.CreatedTime.Before(s.m.CreatedAt) {
			continue // defensive: wants already excludes these
		}
		// Filters first: a feed's pages hold every monitor's rows, and an
		// alert (deep link, truncated texts, id) is built only for a row
		// that passes.
		if !severityAllowed(s.m.Severities, sentinel.MapSeverity(inc.Severity)) {
			s.counts.FilteredSeverity++
			continue
		}
		if !sentinel.MatchSearch(s.m.Search, inc.Title, inc.Description) {
			s.counts.FilteredSearch++
			continue
		}
		s.alerts = append(s.alerts, e.alertFor(s.m, inc, now))
	}
}

// commit writes one page for every subscriber, oldest monitor first (an
// incident two monitors want becomes one alert, the oldest's). A
// subscriber whose page adds nothing and moves nothing is skipped: an idle
// poll writes nothing but its health (clarion bench: a sixth of an idle
// poll's CPU on SQLite, half of its round trips on PostgreSQL). A monitor
// whose lease is lost is dropped from the sweep; the others go on.
func (e *Engine) commit(ctx context.Context, subs []*subscriber, leases *leaseSet) error {
	for _, s := range subs {
		if leases.lost(s.m.ID) {
			continue
		}
		p := s.progress
		if len(s.alerts) == 0 && p.Watermark.Equal(s.storedWatermark) &&
			p.CursorTime.Equal(s.storedCursor) && p.CursorName == s.storedCursorName {
			continue
		}
		inserted, err := e.store.CommitPage(ctx, s.m.ID, e.cfg.Owner, s.alerts, p)
		if errors.Is(err, store.ErrLeaseLost) {
			leases.drop(s.m.ID)
			if err := context.Cause(leases.ctx); err != nil {
				return err // every lease is gone
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("monitor: commit page: %w", err)
		}
		s.storedWatermark = p.Watermark // the stored watermark never goes back
		s.storedCursor, s.storedCursorName = p.CursorTime, p.CursorName
		s.counts.Ingested += inserted
		s.counts.AlreadyKnown += len(s.alerts) - inserted
	}
	return nil
}

// ErrPagingStalled: Microsoft answered a continuation with rows that do not
// come after the cursor; paging stopped and what was read is kept.
var ErrPagingStalled = errors.New("monitor: Microsoft returned a page that does not follow the previous one")

// keyAfter reports whether the incident's key (CreatedTime, IncidentName)
// is strictly after the cursor.
func keyAfter(inc sentinel.Incident, t time.Time, name string) bool {
	if !inc.CreatedTime.Equal(t) {
		return inc.CreatedTime.After(t)
	}
	return inc.Name > name
}

// alertFor maps one incident to a Clarion alert.
func (e *Engine) alertFor(m store.Monitor, inc sentinel.Incident, now time.Time) store.Alert {
	tenant := inc.TenantID
	return store.Alert{
		ID:                  store.NewID(),
		WorkspaceID:         m.WorkspaceID,
		MonitorID:           m.ID,
		MonitorName:         m.Name,
		IncidentID:          inc.Name,
		IncidentNumber:      inc.Number,
		Title:               sentinel.TruncateText(inc.Title, maxTitleBytes),
		Description:         sentinel.TruncateText(inc.Description, maxDescriptionBytes),
		Severity:            sentinel.MapSeverity(inc.Severity),
		SourceSeverity:      inc.Severity,
		Status:              inc.Status,
		DeepLink:            sentinel.DeepLink(inc, e.cfg.PortalHosts),
		SentinelWorkspaceID: m.SentinelWorkspaceID,
		TenantID:            tenant,
		IncidentCreatedAt:   inc.CreatedTime,
		IngestedAt:          now,
		Payload:             inc.Payload,
	}
}

// severityAllowed applies the monitor's severity filter to the mapped
// severity. All four or none checked means no filter (PRODUCT.md).
func severityAllowed(filter []string, sev string) bool {
	if len(filter) == 0 || len(filter) >= len(Severities) {
		return true
	}
	for _, s := range filter {
		if s == sev {
			return true
		}
	}
	return false
}

// Severities are Clarion's alert severities, highest first.
var Severities = []string{"critical", "high", "medium", "low"}

// outcome classifies a poll error into the monitor's health.
type outcome struct {
	status     string
	code       string
	sentence   string
	retryAfter time.Duration // throttled: wait at least this long
	paused     bool          // the connection needs a person; do not call Microsoft
}

func classify(err error) outcome {
	if ra, ok := sentinel.Throttled(err); !ok && errors.Is(err, connection.ErrTransient) {
		// A throttled token refresh (Entra 429) waits like a throttled query.
		if ra, ok = connection.RetryAfter(err); ok && ra > 0 {
			return outcome{status: store.HealthThrottled, code: "throttled", retryAfter: ra,
				sentence: fmt.Sprintf("Microsoft Entra is throttling token requests for this tenant; the next poll waits %s as asked.", ra.Round(time.Second))}
		}
	}
	if ra, ok := sentinel.Throttled(err); ok {
		return outcome{status: store.HealthThrottled, code: "throttled", retryAfter: ra,
			sentence: fmt.Sprintf("Microsoft is throttling requests for this tenant; the next poll waits %s as asked.", ra.Round(time.Second))}
	}
	switch {
	case errors.Is(err, connection.ErrReconnectRequired):
		o := outcome{status: store.HealthPaused, code: "reconnect_required", paused: true,
			sentence: "The Sentinel connection needs to be re-connected; polling is paused until then."}
		if code, sentence, ok := connection.Explain(err); ok {
			o.code, o.sentence = code, sentence
		}
		return o
	case errors.Is(err, connection.ErrNotConnected):
		return outcome{status: store.HealthPaused, code: "not_connected", paused: true,
			sentence: "This Clarion workspace is not connected to Microsoft Sentinel."}
	case errors.Is(err, sentinel.ErrNotOnboarded):
		return outcome{status: store.HealthFailing, code: "datalake_not_onboarded",
			sentence: "The tenant is not onboarded to the Microsoft Sentinel data lake, which incident polling queries. Onboard the tenant or check the Workspace ID."}
	case sentinel.Unauthorized(err):
		return outcome{status: store.HealthFailing, code: "unauthorized",
			sentence: "Microsoft refused the request (401/403): check that the signed-in account can read this Sentinel workspace, or reconnect."}
	case errors.Is(err, ErrPagingStalled):
		return outcome{status: store.HealthFailing, code: "paging_stalled",
			sentence: "Microsoft returned the same page twice; paging stopped and the incidents read so far were kept. The next poll resumes from there."}
	case errors.Is(err, store.ErrLeaseLost):
		return outcome{status: store.HealthFailing, code: "lease_lost", sentence: "Another Clarion replica took over this monitor."}
	case errors.Is(err, context.DeadlineExceeded):
		return outcome{status: store.HealthFailing, code: "timeout", sentence: "Microsoft did not answer in time; retrying with backoff."}
	case sentinel.Transient(err) || errors.Is(err, connection.ErrTransient):
		return outcome{status: store.HealthFailing, code: "upstream_unavailable", sentence: "Microsoft answered with a temporary error; retrying with backoff."}
	}
	var ue *sentinel.UpstreamError
	if errors.As(err, &ue) && ue.Message != "" {
		return outcome{status: store.HealthFailing, code: "query_failed", sentence: "The incident query failed: " + ue.Message}
	}
	return outcome{status: store.HealthFailing, code: "poll_failed", sentence: "The poll failed: " + err.Error()}
}
