package sentinel

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"
)

// Incident is one Sentinel incident read from a SecurityIncident row (the
// latest row of the incident).
type Incident struct {
	// Name is the incident's GUID (IncidentName): the deduplication key.
	Name string
	// Number is the per-workspace IncidentNumber.
	Number int64

	Title       string
	Description string
	// Severity and Status are Microsoft's values, unmapped (see MapSeverity).
	Severity string
	Status   string

	CreatedTime      time.Time
	LastModifiedTime time.Time

	ProviderName       string
	ProviderIncidentID string
	// IncidentURL is the row's IncidentUrl (Azure portal link).
	IncidentURL string
	// ProviderIncidentURL is AdditionalData.providerIncidentUrl (Defender
	// portal link), when present.
	ProviderIncidentURL string
	// TenantID is the Microsoft Entra tenant the incident belongs to, used
	// for deep links. ParseIncidents leaves it empty: the row's TenantId
	// column is the Log Analytics workspace id, not the Entra tenant.
	// Client.PollIncidents fills it from the token's tenant.
	TenantID string

	// Payload is the row as Microsoft sent it, as a JSON object.
	Payload json.RawMessage
}

// RowError reports a row that cannot become an incident.
type RowError struct {
	Row    int    // index of the row in the table
	Column string // the column at fault
	Reason string
}

// Error names the row and the column.
func (e *RowError) Error() string {
	return fmt.Sprintf("sentinel: row %d: column %s: %s", e.Row, e.Column, e.Reason)
}

// ParseIncidents turns SecurityIncident rows into incidents.
//
// IncidentName and CreatedTime are required: a row without either yields a
// *RowError naming the row and the column, and is left out. Every other
// column may be missing, null or unreadable, which leaves its field empty.
// The incidents of the good rows are returned together with the row errors
// (joined), so that the caller decides whether a bad row fails the poll.
func ParseIncidents(t *Table) ([]Incident, error) {
	if t == nil {
		return nil, errors.New("sentinel: parse incidents: no table")
	}
	out, errs := parseIncidents(t)
	return out, errors.Join(errs...)
}

// parseIncidents is ParseIncidents with the row errors apart.
func parseIncidents(t *Table) ([]Incident, []error) {
	cols := incidentColumnsOf(t)
	out := make([]Incident, 0, len(t.Rows))
	var errs []error
	for r, row := range t.Rows {
		inc, err := cols.incident(r, func(i int) any {
			if i < 0 || i >= len(row) {
				return nil
			}
			return row[i]
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		inc.Payload = t.RowObject(r)
		out = append(out, inc)
	}
	return out, errs
}

// incidentColumns are the indexes of the columns an Incident is read from,
// -1 for a column the table lacks.
type incidentColumns struct {
	name, number, title, description, severity, status, created, modified,
	provider, providerID, url, additional int
}

func incidentColumnsOf(t *Table) incidentColumns {
	return incidentColumns{
		name:        t.ColumnIndex("IncidentName"),
		number:      t.ColumnIndex("IncidentNumber"),
		title:       t.ColumnIndex("Title"),
		description: t.ColumnIndex("Description"),
		severity:    t.ColumnIndex("Severity"),
		status:      t.ColumnIndex("Status"),
		created:     t.ColumnIndex("CreatedTime"),
		modified:    t.ColumnIndex("LastModifiedTime"),
		provider:    t.ColumnIndex("ProviderName"),
		providerID:  t.ColumnIndex("ProviderIncidentId"),
		url:         t.ColumnIndex("IncidentUrl"),
		additional:  t.ColumnIndex("AdditionalData"),
	}
}

// incident reads row r, whose cells cell gives by column index (nil for an
// index out of the row), into an Incident without its Payload: both ways of
// reading a page (ParseIncidents, ParseIncidentPage) go through here, so
// they cannot disagree on what a row means.
func (c *incidentColumns) incident(r int, cell func(i int) any) (Incident, error) {
	name := strings.TrimSpace(cellText(cell(c.name)))
	if name == "" {
		return Incident{}, &RowError{Row: r, Column: "IncidentName", Reason: "missing"}
	}
	created, err := cellTime(cell(c.created))
	if err != nil {
		return Incident{}, &RowError{Row: r, Column: "CreatedTime", Reason: err.Error()}
	}
	if created.IsZero() {
		return Incident{}, &RowError{Row: r, Column: "CreatedTime", Reason: "missing"}
	}
	modified, _ := cellTime(cell(c.modified))
	number, _ := cellInt(cell(c.number))
	providerID := cellText(cell(c.providerID))
	if isNone(providerID) {
		providerID = ""
	}
	return Incident{
		Name:                name,
		Number:              number,
		Title:               cellText(cell(c.title)),
		Description:         cellText(cell(c.description)),
		Severity:            cellText(cell(c.severity)),
		Status:              cellText(cell(c.status)),
		CreatedTime:         created,
		LastModifiedTime:    modified,
		ProviderName:        cellText(cell(c.provider)),
		ProviderIncidentID:  strings.TrimSpace(providerID),
		IncidentURL:         strings.TrimSpace(cellText(cell(c.url))),
		ProviderIncidentURL: dynamicString(cell(c.additional), "providerIncidentUrl"),
	}, nil
}

// isNone reports the spellings of "no value" seen in real rows.
func isNone(s string) bool {
	s = strings.TrimSpace(s)
	return s == "" || strings.EqualFold(s, "None") || strings.EqualFold(s, "null")
}

// cellText renders a cell as text: strings as they are, numbers in their
// exact digits, dynamic values as their JSON, null as "".
func cellText(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case json.Number:
		return string(v)
	case json.RawMessage:
		return string(v)
	case bool:
		return strconv.FormatBool(v)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case int:
		return strconv.Itoa(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case time.Time:
		return v.UTC().Format(time.RFC3339Nano)
	default:
		return fmt.Sprint(v)
	}
}

// cellInt reads an integer that may come as a JSON number or a string.
func cellInt(v any) (int64, error) {
	var s string
	switch v := v.(type) {
	case nil:
		return 0, nil
	case json.Number:
		s = string(v)
	case string:
		s = v
	case float64:
		if v != math.Trunc(v) || math.Abs(v) > 1<<53 {
			return 0, errors.New("not an integer")
		}
		return int64(v), nil
	case int:
		return int64(v), nil
	case int64:
		return v, nil
	default:
		return 0, errors.New("not a number")
	}
	s = strings.TrimSpace(s)
	if isNone(s) {
		return 0, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, errors.New("not an integer")
	}
	return int64(f), nil
}

// cellTime reads a datetime cell (see ParseTime).
func cellTime(v any) (time.Time, error) {
	switch v := v.(type) {
	case nil:
		return time.Time{}, nil
	case string:
		return ParseTime(v)
	case time.Time:
		return v.UTC().Truncate(tick), nil
	default:
		return time.Time{}, fmt.Errorf("not a datetime: %s", cellText(v))
	}
}

// dynamicString reads a string field of a dynamic column, which real rows
// carry as a JSON string holding an object and others as the object itself.
func dynamicString(v any, field string) string {
	var raw string
	switch v := v.(type) {
	case string:
		raw = v
	case json.RawMessage:
		raw = string(v)
	case map[string]any:
		s, _ := v[field].(string)
		return strings.TrimSpace(s)
	default:
		return ""
	}
	raw = strings.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return ""
	}
	// Every row of a page has one: read the field in place rather than
	// decode the object into a map, when the object is plain (valid, the
	// field spelled exactly, its text valid Unicode: see rowReader.cell).
	// The loop is members' (page.go) written out, so that the names read
	// need no copies.
	dec := newDecoder([]byte(raw))
	if _, err := dec.ReadToken(); err != nil { // '{'
		return dynamicStringDecoded(raw, field)
	}
	value := "" // the field's JSON string, "" for none
	for dec.PeekKind() != '}' {
		name, err := dec.ReadToken()
		if err != nil {
			return dynamicStringDecoded(raw, field)
		}
		if key := name.String(); key != field {
			if strings.EqualFold(key, field) || dec.SkipValue() != nil {
				return dynamicStringDecoded(raw, field)
			}
			continue
		}
		kind := dec.PeekKind()
		start, end, ok := readValue(dec)
		if !ok {
			return dynamicStringDecoded(raw, field)
		}
		value = "" // the last one counts, as in encoding/json's map
		if kind == '"' {
			value = raw[start:end]
		}
	}
	if _, err := dec.ReadToken(); err != nil || !atEOF(dec) {
		return dynamicStringDecoded(raw, field)
	}
	if value == "" {
		return ""
	}
	var buf [256]byte
	s, err := jsontext.AppendUnquote(buf[:0], value)
	if err != nil {
		return dynamicStringDecoded(raw, field)
	}
	return strings.TrimSpace(string(s))
}

// dynamicStringDecoded is dynamicString through encoding/json: for invalid
// text, keys with escapes, and the field in another case.
func dynamicStringDecoded(raw, field string) string {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &obj); err != nil {
		return ""
	}
	fv, ok := obj[field]
	if !ok {
		for k, x := range obj {
			if strings.EqualFold(k, field) {
				fv, ok = x, true
				break
			}
		}
	}
	if !ok {
		return ""
	}
	var s string
	if err := json.Unmarshal(fv, &s); err != nil {
		return ""
	}
	return strings.TrimSpace(s)
}

// tick is Kusto's datetime resolution.
const tick = 100 * time.Nanosecond

// ParseTime parses a datetime as Microsoft's rows carry it: RFC 3339 with 0
// to 7 fractional digits and "Z" or a numeric offset, a space instead of the
// "T", or no offset at all (Kusto datetimes are UTC). "None", "null" and ""
// mean no value and give the zero time. The result is in UTC and truncated
// to Kusto's 100 ns tick, which it keeps exactly.
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if isNone(s) {
		return time.Time{}, nil
	}
	norm := s
	if len(norm) > 10 && (norm[10] == ' ' || norm[10] == 't') {
		norm = norm[:10] + "T" + norm[11:]
	}
	if strings.HasSuffix(norm, "z") {
		norm = norm[:len(norm)-1] + "Z"
	}
	for _, layout := range []string{
		time.RFC3339Nano,                     // Z or ±hh:mm
		"2006-01-02T15:04:05.999999999Z0700", // ±hhmm
		"2006-01-02T15:04:05.999999999Z07",   // ±hh
		"2006-01-02T15:04:05.999999999",      // no offset: UTC
		"2006-01-02",                         // a date alone
	} {
		if t, err := time.Parse(layout, norm); err == nil {
			return t.UTC().Truncate(tick), nil
		}
	}
	return time.Time{}, fmt.Errorf("sentinel: unreadable datetime %q", clip(s, 40))
}

// clip shortens s for an error message.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return TruncateText(s, n) + "…"
}
