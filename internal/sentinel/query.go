package sentinel

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxQueryChars is Microsoft's limit on the KQL text of one MCP tool call.
const MaxQueryChars = 800

// ErrQueryTooLong is returned, before any request is made, for KQL longer
// than MaxQueryChars characters.
var ErrQueryTooLong = errors.New("sentinel: KQL query longer than 800 characters")

func checkQueryLength(kql string) error {
	if n := utf8.RuneCountInString(kql); n > MaxQueryChars {
		return fmt.Errorf("%w (%d characters)", ErrQueryTooLong, n)
	}
	return nil
}

// PollParams selects one page of a poll sweep over SecurityIncident.
type PollParams struct {
	// Start is the sweep start: only incidents created at or after it are
	// read (max of the monitor's creation and watermark − look-back).
	Start time.Time
	// AfterTime and AfterName are the keyset cursor: the page starts after
	// (AfterTime, AfterName) in (CreatedTime, IncidentName) order. A zero
	// AfterTime means the first page of the sweep.
	AfterTime time.Time
	AfterName string
	// PageSize is the number of incidents per page.
	PageSize int
}

// PollQuery returns the KQL of one poll page (see docs/ARCHITECTURE.md):
//
//	SecurityIncident
//	| where CreatedTime >= datetime(<Start>)
//	| summarize arg_max(LastModifiedTime, *) by IncidentName
//	| where CreatedTime > datetime(<AfterTime>) or (CreatedTime == datetime(<AfterTime>) and strcmp(IncidentName, '<AfterName>') > 0)
//	| order by CreatedTime asc, IncidentName asc
//	| take <PageSize>
//
// The keyset line is left out when AfterTime is zero. Datetimes are written
// in UTC with exactly 7 fractional digits (Kusto's 100 ns tick), so a cursor
// read with ParseTime goes back unchanged; a time finer than the tick (a Go
// clock reading) is rounded down to it, which never skips an incident.
// AfterName is written as an escaped KQL
// string literal although it comes from Microsoft. The query never exceeds
// MaxQueryChars (error otherwise).
func PollQuery(p PollParams) (string, error) {
	if p.Start.IsZero() {
		return "", errors.New("sentinel: poll query: no start time")
	}
	if p.PageSize <= 0 {
		return "", fmt.Errorf("sentinel: poll query: page size %d", p.PageSize)
	}
	start, err := kqlDatetime(p.Start)
	if err != nil {
		return "", fmt.Errorf("sentinel: poll query: start: %w", err)
	}
	var b strings.Builder
	b.WriteString("SecurityIncident\n")
	b.WriteString("| where CreatedTime >= " + start + "\n")
	b.WriteString("| summarize arg_max(LastModifiedTime, *) by IncidentName\n")
	if !p.AfterTime.IsZero() {
		after, err := kqlDatetime(p.AfterTime)
		if err != nil {
			return "", fmt.Errorf("sentinel: poll query: cursor: %w", err)
		}
		name, err := KQLString(p.AfterName)
		if err != nil {
			return "", fmt.Errorf("sentinel: poll query: cursor: %w", err)
		}
		b.WriteString("| where CreatedTime > " + after + " or (CreatedTime == " + after + " and strcmp(IncidentName, " + name + ") > 0)\n")
	}
	b.WriteString("| order by CreatedTime asc, IncidentName asc\n")
	b.WriteString("| take " + strconv.Itoa(p.PageSize))
	q := b.String()
	if err := checkQueryLength(q); err != nil {
		return "", fmt.Errorf("sentinel: poll query: %w", err)
	}
	return q, nil
}

// kqlDatetime renders t as a KQL datetime literal in UTC with 7 fractional
// digits.
func kqlDatetime(t time.Time) (string, error) {
	t = t.UTC()
	if t.Year() < 1 || t.Year() > 9999 {
		return "", fmt.Errorf("datetime out of range: year %d", t.Year())
	}
	// Kusto keeps 100 ns ticks. Rounding down can only widen the page
	// (duplicates, which deduplication absorbs), never skip an incident.
	t = t.Truncate(tick)
	return "datetime(" + t.Format("2006-01-02T15:04:05.0000000Z") + ")", nil
}

// KQLString returns s as a single-quoted KQL string literal. Per the KQL
// string rules the backslash escapes the quote, the backslash itself, tab,
// newline and carriage return; other control characters and invalid UTF-8
// have no documented escape and are refused.
func KQLString(s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", errors.New("string is not valid UTF-8")
	}
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for _, r := range s {
		switch r {
		case '\'':
			b.WriteString(`\'`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if r < 0x20 || r == 0x7f {
				return "", fmt.Errorf("string holds control character %U", r)
			}
			b.WriteRune(r)
		}
	}
	b.WriteByte('\'')
	return b.String(), nil
}
