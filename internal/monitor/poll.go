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
// under the connection of the monitor's Clarion workspace. The app wires it
// to the connection service (tokens) and the Sentinel MCP client.
type Source interface {
	QueryIncidents(ctx context.Context, m store.Monitor, kql string) (Page, error)
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

// pollResult is what one poll did, for the monitor's health.
type pollResult struct {
	counts store.PollCounts
	pages  int
	// more: the poll stopped at its page budget with rows left; the next
	// poll resumes from the stored cursor and should come soon.
	more bool
}

// poll runs one poll of a claimed monitor: one sweep (or the rest of an
// interrupted one) over SecurityIncident, page by page. Each page is
// committed, alerts and progress together, before the next is asked for, so
// a crash at any point loses nothing and duplicates nothing: the store's
// unique key absorbs re-reads, and the cursor never passes an uncommitted row.
func (e *Engine) poll(ctx context.Context, m store.Monitor) (pollResult, error) {
	var res pollResult
	now := e.now()
	start := m.CreatedAt // forward-only: never before the monitor existed
	if lb := m.Watermark.Add(-e.cfg.Lookback); lb.After(start) {
		start = lb
	}
	afterTime, afterName := m.CursorTime, m.CursorName
	if !afterTime.IsZero() {
		// Resuming a sweep cut short by the page budget: every row before the
		// cursor was committed, so the sweep restarts at the cursor.
		start = afterTime
		if start.Before(m.CreatedAt) {
			start = m.CreatedAt
		}
	}
	watermark := m.Watermark
	// What the store holds, to tell a page that changes nothing.
	storedWatermark, storedCursor := m.Watermark, m.CursorTime
	seen := make(map[string]bool)
	for res.pages < e.cfg.MaxPagesPerPoll {
		q, err := sentinel.PollQuery(sentinel.PollParams{Start: start, AfterTime: afterTime, AfterName: afterName, PageSize: e.cfg.PageSize})
		if err != nil {
			return res, fmt.Errorf("monitor: build query: %w", err)
		}
		page, err := e.source.QueryIncidents(ctx, m, q)
		if err != nil {
			return res, err
		}
		res.pages++
		incs := page.Incidents
		if !afterTime.IsZero() && len(incs) > 0 && !keyAfter(incs[0], afterTime, afterName) {
			// The answer does not follow the cursor we sent (the same page
			// again, or paging ignored): stop here, keep what was committed.
			return res, ErrPagingStalled
		}
		if len(page.Invalid) > 0 {
			res.counts.Invalid += len(page.Invalid)
			e.log.Warn("skipped unreadable incident rows", "monitor_id", m.ID, "count", len(page.Invalid), "first", page.Invalid[0])
		}
		alerts := make([]store.Alert, 0, len(incs))
		for _, inc := range incs {
			if !seen[inc.Name] {
				seen[inc.Name] = true
				res.counts.Returned++
			}
			if inc.CreatedTime.After(watermark) {
				watermark = inc.CreatedTime
			}
			if inc.CreatedTime.Before(m.CreatedAt) {
				continue // defensive: the query already excludes these
			}
			a := e.alertFor(m, inc, now)
			if !severityAllowed(m.Severities, a.Severity) {
				res.counts.FilteredSeverity++
				continue
			}
			if !sentinel.MatchSearch(m.Search, inc.Title, inc.Description) {
				res.counts.FilteredSearch++
				continue
			}
			alerts = append(alerts, a)
		}
		// A full page means more may follow; a full page with no readable
		// row cannot move the cursor, so the sweep ends there.
		full := max(page.Rows, len(incs)) >= e.cfg.PageSize && len(incs) > 0
		var p store.Progress
		p.Watermark = watermark
		if full {
			last := incs[len(incs)-1]
			p.CursorTime, p.CursorName = last.CreatedTime, last.Name
		}
		if len(alerts) == 0 && !full && storedCursor.IsZero() && watermark.Equal(storedWatermark) {
			// An idle poll's page: nothing to insert, progress as stored.
			// Its transaction would write nothing; FinishPoll still checks
			// the lease. (clarion bench: a sixth of an idle poll's CPU on
			// SQLite, half of its database round trips on PostgreSQL.)
			return res, nil
		}
		inserted, err := e.store.CommitPage(ctx, m.ID, e.cfg.Owner, alerts, p)
		if err != nil {
			return res, fmt.Errorf("monitor: commit page: %w", err)
		}
		storedWatermark, storedCursor = watermark, p.CursorTime // watermark never goes back
		res.counts.Ingested += inserted
		res.counts.AlreadyKnown += len(alerts) - inserted
		if !full {
			return res, nil
		}
		start, afterTime, afterName = p.CursorTime, p.CursorTime, p.CursorName
	}
	res.more = true
	return res, nil
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
