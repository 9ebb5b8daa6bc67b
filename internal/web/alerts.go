package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/clarion/sentinel/internal/api"
	"github.com/clarion/sentinel/internal/integration"
	"github.com/clarion/sentinel/internal/store"
)

// alertsPageSize is how many alerts a page of the list shows.
const alertsPageSize = 50

type alertsData struct {
	Severity   string
	MonitorID  string
	Severities []string
	Monitors   []monitorOption
	Errors     map[string]string
	Alerts     []store.Alert
	// StreamURL is where the page's script follows new alerts; set on the
	// first (newest) page only.
	StreamURL string
	NextURL   string // older alerts
	FirstURL  string // back to the newest, on an older page
	Filtered  bool
}

type monitorOption struct {
	ID, Name string
	Selected bool
}

// newer reports whether a comes after the cursor (t, id) in ingestion order.
func newer(a store.Alert, t time.Time, id string) bool {
	return a.IngestedAt.After(t) || (a.IngestedAt.Equal(t) && a.ID > id)
}

func (h *Handler) alerts(w http.ResponseWriter, r *http.Request, v *visit) {
	ctx := r.Context()
	q := r.URL.Query()
	d := alertsData{Severity: strings.ToLower(strings.TrimSpace(q.Get("severity"))), MonitorID: q.Get("monitor_id"),
		Severities: integration.Severities, Errors: map[string]string{}}
	d.Filtered = d.Severity != "" || d.MonitorID != ""
	f := store.AlertFilter{Severity: d.Severity, MonitorID: d.MonitorID, Limit: alertsPageSize}
	before := q.Get("before")
	if before != "" {
		t, id, ok := store.DecodeCursor(before)
		if !ok {
			http.Redirect(w, r, "/alerts?"+filterQuery(d.Severity, d.MonitorID).Encode(), http.StatusSeeOther)
			return
		}
		f.BeforeIngestedAt, f.BeforeID = t, id
	}

	ms, err := h.cfg.Integration.ListMonitors(ctx, v.Principal.WorkspaceID)
	if err != nil {
		h.internal(w, r, "list monitors", err)
		return
	}
	known := false
	for _, m := range ms {
		d.Monitors = append(d.Monitors, monitorOption{ID: m.ID, Name: m.Name, Selected: m.ID == d.MonitorID})
		known = known || m.ID == d.MonitorID
	}
	if d.MonitorID != "" && !known {
		// Alerts outlive their monitor: keep the filter selectable.
		d.Monitors = append(d.Monitors, monitorOption{ID: d.MonitorID, Name: "A deleted monitor", Selected: true})
	}

	status := http.StatusOK
	as, err := h.cfg.Integration.ListAlerts(ctx, v.Principal.WorkspaceID, f)
	if fes := api.FieldErrors(err); len(fes) > 0 {
		for _, fe := range fes {
			d.Errors[fe.Field] = fe.Message
		}
		status, err = http.StatusUnprocessableEntity, nil
	}
	if err != nil {
		h.internal(w, r, "list alerts", err)
		return
	}
	d.Alerts = as
	if len(d.Errors) == 0 {
		fq := filterQuery(d.Severity, d.MonitorID)
		if before == "" {
			sq := filterQuery(d.Severity, d.MonitorID)
			if len(as) > 0 {
				sq.Set("after", store.EncodeCursor(as[0].IngestedAt, as[0].ID))
			}
			d.StreamURL = "/alerts/stream?" + sq.Encode()
		} else {
			d.FirstURL = "/alerts?" + fq.Encode()
		}
		if len(as) == alertsPageSize {
			fq.Set("before", store.EncodeCursor(as[len(as)-1].IngestedAt, as[len(as)-1].ID))
			d.NextURL = "/alerts?" + fq.Encode()
		}
	}
	h.render(w, r, status, "alerts.html", v.page("Alerts", "alerts", d))
}

func filterQuery(severity, monitorID string) url.Values {
	q := url.Values{}
	if severity != "" {
		q.Set("severity", severity)
	}
	if monitorID != "" {
		q.Set("monitor_id", monitorID)
	}
	return q
}

// alertStream sends the alerts that arrive after the page was rendered, as
// Server-Sent Events: each "alert" event carries the list's row for it,
// rendered by the same template as the page (so escaped the same way). The
// event id is the alert's cursor, which the browser sends back as
// Last-Event-ID when it reconnects.
func (h *Handler) alertStream(w http.ResponseWriter, r *http.Request, v *visit) {
	ctx := r.Context()
	q := r.URL.Query()
	f := store.AlertFilter{Severity: strings.ToLower(q.Get("severity")), MonitorID: q.Get("monitor_id"), Limit: alertsPageSize}
	var afterT time.Time
	var afterID string
	cursor := r.Header.Get("Last-Event-ID")
	if cursor == "" {
		cursor = q.Get("after")
	}
	if cursor != "" {
		t, id, ok := store.DecodeCursor(cursor)
		if !ok {
			http.Error(w, "bad cursor", http.StatusBadRequest)
			return
		}
		afterT, afterID = t, id
	}
	as, err := h.cfg.Integration.ListAlerts(ctx, v.Principal.WorkspaceID, f)
	if len(api.FieldErrors(err)) > 0 {
		http.Error(w, "bad filter", http.StatusBadRequest)
		return
	}
	if err != nil {
		h.log.Error("alert stream", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}

	rc := http.NewResponseController(w)
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := io.WriteString(w, "retry: 3000\n\n"); err != nil {
		return
	}

	seen := make(map[string]bool)
	lastWrite := h.now()
	send := func(as []store.Alert) error {
		var fresh []store.Alert
		for _, a := range as {
			if !seen[a.ID] && newer(a, afterT, afterID) {
				fresh = append(fresh, a)
			}
		}
		if len(fresh) == alertsPageSize {
			// More arrived than one page: the list must be reloaded.
			if _, err := io.WriteString(w, "event: overflow\ndata: reload\n\n"); err != nil {
				return err
			}
		}
		// Oldest first: the script puts each on top, so the newest ends first.
		for i := len(fresh) - 1; i >= 0; i-- {
			a := fresh[i]
			var buf bytes.Buffer
			if err := h.pages["alerts.html"].ExecuteTemplate(&buf, "alert-row", a); err != nil {
				return err
			}
			var ev strings.Builder
			fmt.Fprintf(&ev, "id: %s\nevent: alert\n", store.EncodeCursor(a.IngestedAt, a.ID))
			for line := range strings.Lines(buf.String()) {
				ev.WriteString("data: " + strings.TrimRight(line, "\r\n") + "\n")
			}
			ev.WriteString("\n")
			if _, err := io.WriteString(w, ev.String()); err != nil {
				return err
			}
			seen[a.ID] = true
		}
		if len(fresh) > 0 {
			lastWrite = h.now()
		}
		return rc.Flush()
	}
	if err := send(as); err != nil {
		return
	}

	tick := time.NewTicker(h.cfg.StreamPoll)
	defer tick.Stop()
	end := time.NewTimer(h.cfg.StreamMaxAge)
	defer end.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.stop:
			return
		case <-end.C:
			return // the browser reconnects, and is authenticated again
		case <-tick.C:
		}
		as, err := h.cfg.Integration.ListAlerts(ctx, v.Principal.WorkspaceID, f)
		if err != nil {
			if !errors.Is(err, ctx.Err()) {
				h.log.Warn("alert stream", "workspace_id", v.Principal.WorkspaceID, "err", err)
			}
			return
		}
		if err := send(as); err != nil {
			return
		}
		if h.now().Sub(lastWrite) > 15*time.Second {
			// A comment keeps proxies from closing an idle stream and
			// finds a browser that went away.
			if _, err := io.WriteString(w, ": keep-alive\n\n"); err != nil || rc.Flush() != nil {
				return
			}
			lastWrite = h.now()
		}
	}
}

type alertData struct {
	store.Alert
	Payload      *jsonNode
	PayloadText  string // indented JSON
	PayloadError string
}

func (h *Handler) alert(w http.ResponseWriter, r *http.Request, v *visit) {
	a, err := h.cfg.Integration.GetAlert(r.Context(), v.Principal.WorkspaceID, r.PathValue("id"))
	if errors.Is(err, integration.ErrNotFound) {
		h.notFound(w, r, "alert")
		return
	}
	if err != nil {
		h.internal(w, r, "get alert", err)
		return
	}
	d := alertData{Alert: a}
	if len(a.Payload) > 0 {
		var buf bytes.Buffer
		if err := json.Indent(&buf, a.Payload, "", "  "); err == nil {
			d.PayloadText = buf.String()
		} else {
			d.PayloadText = string(a.Payload)
		}
		if d.Payload, err = parseJSONTree(a.Payload); err != nil {
			d.PayloadError = "The incident payload is too large or too deep to show as a tree; the raw JSON is below."
		}
	}
	h.render(w, r, http.StatusOK, "alert.html", v.page(a.Title, "alerts", d))
}

// jsonNode is one value of the incident payload for the collapsible viewer,
// keys in the order Microsoft sent them.
type jsonNode struct {
	Key      string
	Kind     string // object, array, string, number, bool, null
	Value    string // scalars, as text
	Children []*jsonNode
	Open     bool // the first levels start open
	Embedded bool // the value was JSON text inside a string
}

// Bounds on the payload tree: beyond them the page shows the raw JSON only.
const (
	maxJSONDepth = 32
	maxJSONNodes = 20000
)

var errJSONTooBig = errors.New("web: payload too large or too deep for the tree")

func parseJSONTree(b []byte) (*jsonNode, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	count := 0
	n, err := readJSONNode(dec, "payload", 0, &count)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("web: trailing data after the payload")
	}
	return n, nil
}

func readJSONNode(dec *json.Decoder, key string, depth int, count *int) (*jsonNode, error) {
	if *count++; *count > maxJSONNodes || depth > maxJSONDepth {
		return nil, errJSONTooBig
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	n := &jsonNode{Key: key, Open: depth < 1}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			n.Kind = "object"
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, _ := kt.(string)
				c, err := readJSONNode(dec, k, depth+1, count)
				if err != nil {
					return nil, err
				}
				n.Children = append(n.Children, c)
			}
		case '[':
			n.Kind = "array"
			for i := 0; dec.More(); i++ {
				c, err := readJSONNode(dec, strconv.Itoa(i), depth+1, count)
				if err != nil {
					return nil, err
				}
				n.Children = append(n.Children, c)
			}
		default:
			return nil, fmt.Errorf("web: unexpected %v in payload", t)
		}
		if _, err := dec.Token(); err != nil { // the closing delimiter
			return nil, err
		}
	case string:
		n.Kind, n.Value = "string", t
		// Log Analytics returns dynamic columns (Owner, AdditionalData,
		// AlertIds, Labels …) as JSON text: show what they hold as a tree
		// too. The raw JSON below stays exactly as sent.
		if s := strings.TrimSpace(t); len(s) > 1 && (s[0] == '{' || s[0] == '[') && json.Valid([]byte(s)) {
			inner := json.NewDecoder(strings.NewReader(s))
			inner.UseNumber()
			if c, err := readJSONNode(inner, key, depth+1, count); err == nil {
				c.Open, c.Embedded = n.Open, true
				return c, nil
			} else if errors.Is(err, errJSONTooBig) {
				return nil, err
			}
		}
	case json.Number:
		n.Kind, n.Value = "number", t.String()
	case bool:
		n.Kind, n.Value = "bool", strconv.FormatBool(t)
	case nil:
		n.Kind, n.Value = "null", "null"
	}
	return n, nil
}
