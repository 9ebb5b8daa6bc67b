package sentinel

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// IncidentPage is one page of SecurityIncident rows read from a query_lake
// answer.
type IncidentPage struct {
	// Incidents are the rows that became incidents, in the rows' order.
	Incidents []Incident
	// Rows is the number of rows in the result set, bad rows included.
	Rows int
	// Invalid holds a *RowError for each row left out, in the rows' order.
	Invalid []error
}

// QueryIncidents runs one KQL query over SecurityIncident (a poll page, see
// PollQuery) against a workspace of the data lake and reads its rows as
// ParseIncidentPage does, with TenantID set to the token's tenant.
func (c *Client) QueryIncidents(ctx context.Context, tok Token, workspaceID, kql string) (IncidentPage, error) {
	args := map[string]any{"query": kql}
	if workspaceID != "" {
		args["workspaceId"] = workspaceID
	}
	res, err := c.CallTool(ctx, tok, ServerDataExploration, "query_lake", args)
	if err != nil {
		return IncidentPage{}, err
	}
	page, err := ParseIncidentPage(res)
	if err != nil {
		return IncidentPage{}, fmt.Errorf("sentinel: query_lake: %w", err)
	}
	for i := range page.Incidents {
		page.Incidents[i].TenantID = tok.TenantID
	}
	return page, nil
}

// ParseIncidentPage reads the SecurityIncident rows of a tool's answer: the
// same incidents, row errors and failures as ParseToolResult followed by
// ParseIncidents, with the rows counted.
//
// A Log Analytics shaped answer ({"tables":[{"name","columns","rows"}]}, as
// query_lake sends) is read in one pass over its text, each payload made
// from the cells' JSON as sent; any other shape, or text that pass does not
// accept, goes through ParseTable.
func ParseIncidentPage(r *ToolResult) (IncidentPage, error) {
	if r == nil {
		return IncidentPage{}, errors.New("sentinel: no tool result")
	}
	if err := r.Err(); err != nil {
		return IncidentPage{}, err
	}
	var firstErr error
	try := func(text string) (IncidentPage, bool) {
		if p, ok := readIncidentTable(text); ok {
			return p, true
		}
		t, err := ParseTable([]byte(text))
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			return IncidentPage{}, false
		}
		incs, errs := parseIncidents(t)
		return IncidentPage{Incidents: incs, Rows: len(t.Rows), Invalid: errs}, true
	}
	for _, text := range r.Content {
		if strings.TrimSpace(text) == "" {
			continue
		}
		if p, ok := try(text); ok {
			return p, nil
		}
	}
	if len(r.Structured) > 0 {
		if p, ok := try(string(r.Structured)); ok {
			return p, nil
		}
	}
	if firstErr == nil {
		firstErr = fmt.Errorf("%w: the tool answered with no content", ErrInvalidResponse)
	}
	return IncidentPage{}, firstErr
}

// The keys of encoding/json's view of a result (parseTableObject) and of a
// table (wireTable). It matches a key, once unquoted, without regard to
// case: a key that is one of these but not in the exact spelling
// readIncidentTable reads is left to ParseTable.
var (
	resultKeys = []string{"tables", "columns", "rows", "name", "error"}
	tableKeys  = []string{"name", "tablename", "tablekind", "frametype", "columns", "rows"}
)

func isKeyOf(key string, keys []string) bool {
	for _, k := range keys {
		if strings.EqualFold(key, k) {
			return true
		}
	}
	return false
}

// newDecoder returns a jsontext decoder over data that accepts what
// encoding/json accepts (ParseTable validates with json.Valid): duplicate
// names, which the readers here check themselves where they matter, and
// invalid UTF-8, which they copy as sent or leave to encoding/json (see
// rowReader.cell). It reads data in place, without changing it.
func newDecoder(data []byte) *jsontext.Decoder {
	return jsontext.NewDecoder(bytes.NewBuffer(data),
		jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
}

// members reads the object at the decoder's position, calling member with
// each name (unquoted) and the decoder on its value, which member must read.
// It stops at the first false.
func members(dec *jsontext.Decoder, member func(name string) bool) bool {
	if dec.PeekKind() != '{' {
		return false
	}
	if _, err := dec.ReadToken(); err != nil {
		return false
	}
	for dec.PeekKind() != '}' { // 0 on an error, which ReadToken then returns
		name, err := dec.ReadToken()
		if err != nil || !member(name.String()) {
			return false
		}
	}
	_, err := dec.ReadToken()
	return err == nil
}

// elements reads the array at the decoder's position, calling element with
// the decoder on each element, which element must read. It stops at the
// first false.
func elements(dec *jsontext.Decoder, element func() bool) bool {
	if dec.PeekKind() != '[' {
		return false
	}
	if _, err := dec.ReadToken(); err != nil {
		return false
	}
	for dec.PeekKind() != ']' {
		if !element() {
			return false
		}
	}
	_, err := dec.ReadToken()
	return err == nil
}

// readValue reads the value at the decoder's position, returning where it
// is in the decoder's input.
func readValue(dec *jsontext.Decoder) (start, end int, ok bool) {
	v, err := dec.ReadValue()
	end = int(dec.InputOffset())
	return end - len(v), end, err == nil
}

// atEOF reports whether the decoder's input holds nothing more than white
// space.
func atEOF(dec *jsontext.Decoder) bool {
	_, err := dec.ReadToken()
	return err == io.EOF
}

// tableText locates one table of a result in its text.
type tableText struct {
	name       string
	hasName    bool
	columns    string // the columns array as sent
	hasColumns bool
	hasRows    bool
	rows       [2]int        // start and end of the rows array in the text
	page       *IncidentPage // its rows, when read as they came
}

// readIncidentTable reads a result of the shape
// {"tables":[{"name","columns","rows"}]} straight from its text, giving what
// ParseTable and parseIncidents give. ok is false for any text it is not
// sure to read as they do (another shape, other spellings of the keys,
// duplicate keys, invalid JSON, rows that do not fit the columns, strings
// that encoding/json and jsontext decode differently): the caller then goes
// through ParseTable, which has the last word.
func readIncidentTable(text string) (page IncidentPage, ok bool) {
	// The decoder reads bytes, and the values kept are cut from text: data
	// is its one copy.
	data := []byte(text)
	dec := newDecoder(data)
	var tables []tableText
	seen, primary := false, false
	ok = members(dec, func(key string) bool {
		if key != "tables" {
			return !isKeyOf(key, resultKeys) && dec.SkipValue() == nil
		}
		if seen {
			return false
		}
		seen = true
		return elements(dec, func() bool {
			var t tableText
			ok := members(dec, func(key string) bool {
				switch key {
				case "name":
					if t.hasName || dec.PeekKind() != '"' {
						return false
					}
					start, end, ok := readValue(dec)
					if !ok {
						return false
					}
					t.hasName = true
					name, err := jsontext.AppendUnquote(nil, text[start:end])
					t.name = string(name)
					return err == nil
				case "columns":
					if t.hasColumns || dec.PeekKind() != '[' {
						return false
					}
					start, end, ok := readValue(dec)
					t.hasColumns, t.columns = true, text[start:end]
					return ok
				case "rows":
					if t.hasRows || dec.PeekKind() != '[' {
						return false
					}
					t.hasRows = true
					if !primary && t.hasColumns && strings.EqualFold(t.name, "PrimaryResult") {
						// The first table named PrimaryResult is the one
						// parseTableObject picks, whatever follows: its
						// rows are read now rather than in a second pass.
						columns, ok := decodeColumns(t.columns)
						if !ok {
							return false
						}
						p, ok := newRowReader(text, columns).read(dec, 0)
						t.page = &p
						return ok
					}
					start, end, ok := readValue(dec)
					t.rows = [2]int{start, end}
					return ok
				}
				return !isKeyOf(key, tableKeys) && dec.SkipValue() == nil
			})
			primary = primary || strings.EqualFold(t.name, "PrimaryResult")
			tables = append(tables, t)
			return ok
		})
	})
	if !ok || !atEOF(dec) || len(tables) == 0 {
		return IncidentPage{}, false
	}

	// As parseTableObject: the first table named PrimaryResult, else the
	// first; and every table's columns must decode.
	pick := 0
	for i, t := range tables {
		if strings.EqualFold(t.name, "PrimaryResult") {
			pick = i
			break
		}
	}
	var columns []Column
	for i, t := range tables {
		cols, ok := decodeColumns(t.columns)
		if !ok {
			return IncidentPage{}, false
		}
		if i == pick {
			columns = cols
		}
	}
	t := tables[pick]
	switch {
	case t.page != nil:
		return *t.page, true
	case !t.hasColumns || !t.hasRows:
		return IncidentPage{}, false
	}
	start, end := t.rows[0], t.rows[1]
	return newRowReader(text, columns).read(newDecoder(data[start:end]), start)
}

// decodeColumns decodes a table's columns as parseTableObject does; "" is
// no columns. The result is shared: callers only read it.
func decodeColumns(text string) ([]Column, bool) {
	if text == "" {
		return nil, true
	}
	// Every page of every poll carries the same SecurityIncident columns,
	// and an idle poll's page is nothing else: decoding them anew was a
	// fifth of the CPU of reading an idle page (clarion bench profile).
	if last := lastColumns.Load(); last != nil && last.text == text {
		return last.cols, true
	}
	var wcs []wireColumn
	if err := json.Unmarshal([]byte(text), &wcs); err != nil {
		return nil, false
	}
	cols := make([]Column, len(wcs))
	for i, wc := range wcs {
		cols[i] = wc.column()
	}
	// A copy: text is a part of the page, which must not be kept alive.
	lastColumns.Store(&decodedColumns{text: strings.Clone(text), cols: cols})
	return cols, true
}

// lastColumns is the columns text decodeColumns decoded last, and its
// result.
var lastColumns atomic.Pointer[decodedColumns]

type decodedColumns struct {
	text string
	cols []Column
}

// cellSpan is where one cell of a row is in the page's text.
type cellSpan struct {
	start, end int
	kind       jsontext.Kind
	// For a string, what stringForm says of it.
	verbatim, canonical bool
}

// rowReader reads the rows of one table from the page's text.
type rowReader struct {
	text    string
	columns []Column
	cols    incidentColumns
	keys    []string // `"name":` of each column, as RowObject writes them
	keysLen int
	// transient marks the columns whose text an Incident does not keep
	// (times, number, dynamic data): those cells may be parts of the
	// page's text. Every other string is a copy, so that an incident kept
	// does not keep its whole page.
	transient []bool
	cells     []cellSpan // of the current row
	bad       bool       // a cell did not read back: give up on the text
	arena     []byte     // the payloads are cut from it
	scratch   []byte
	compact   bytes.Buffer
}

func newRowReader(text string, columns []Column) *rowReader {
	r := &rowReader{text: text, columns: columns, cells: make([]cellSpan, 0, len(columns))}
	r.cols = incidentColumnsOf(&Table{Columns: columns})
	r.transient = make([]bool, len(columns))
	for _, i := range []int{r.cols.created, r.cols.modified, r.cols.number, r.cols.additional} {
		if i >= 0 {
			r.transient[i] = true
		}
	}
	for _, c := range columns {
		k, ok := appendString(nil, c.Name)
		if !ok {
			// encoding/json gave the name, valid UTF-8: never here.
			r.bad = true
		}
		k = append(k, ':')
		r.keys = append(r.keys, string(k))
		r.keysLen += len(k) + 1
	}
	return r
}

// read reads the rows array at the decoder's position; base is where the
// decoder's input starts in the page's text.
func (r *rowReader) read(dec *jsontext.Decoder, base int) (IncidentPage, bool) {
	var page IncidentPage
	ok := !r.bad && elements(dec, func() bool {
		row := page.Rows
		page.Rows++
		rowStart := base + int(dec.InputOffset())
		r.cells = r.cells[:0]
		ok := elements(dec, func() bool {
			kind := dec.PeekKind()
			start, end, ok := readValue(dec)
			c := cellSpan{start: base + start, end: base + end, kind: kind}
			if kind == '"' {
				c.verbatim, c.canonical = stringForm(r.text[c.start:c.end])
			}
			r.cells = append(r.cells, c)
			return ok
		})
		// buildTable refuses the whole result for a row that does not fit
		// the columns.
		if !ok || len(r.cells) != len(r.columns) {
			return false
		}
		inc, err := r.cols.incident(row, r.cell)
		if r.bad {
			return false
		}
		if err != nil {
			page.Invalid = append(page.Invalid, err)
			return true
		}
		// A payload is about its row as sent plus the keys. Payloads are
		// cut from blocks sized for the rest of the text, rather than
		// allocated one by one.
		rowLen := base + int(dec.InputOffset()) - rowStart
		if need := rowLen + r.keysLen + 2; cap(r.arena)-len(r.arena) < need {
			rest := len(r.text) - rowStart
			r.arena = make([]byte, 0, max(need, rest+(rest/rowLen+1)*(r.keysLen+2)))
		}
		from := len(r.arena)
		if r.arena, ok = r.appendPayload(r.arena); !ok {
			return false
		}
		inc.Payload = r.arena[from:len(r.arena):len(r.arena)]
		if page.Incidents == nil {
			// The rest of the text holds about this many rows.
			page.Incidents = make([]Incident, 0, (len(r.text)-rowStart)/rowLen+1)
		}
		page.Incidents = append(page.Incidents, inc)
		return true
	})
	if page.Incidents == nil {
		page.Incidents = []Incident{} // as ParseIncidents
	}
	return page, ok
}

// cell returns cell i of the current row as decodeCell gives it.
func (r *rowReader) cell(i int) any {
	if i < 0 || i >= len(r.cells) {
		return nil
	}
	c := r.cells[i]
	raw := r.text[c.start:c.end]
	switch c.kind {
	case 'n':
		return nil
	case 't':
		return true
	case 'f':
		return false
	case '"':
		if c.verbatim {
			if r.transient[i] {
				return raw[1 : len(raw)-1]
			}
			return strings.Clone(raw[1 : len(raw)-1])
		}
		// jsontext decodes a valid string as encoding/json does. For
		// invalid UTF-8 or a lone surrogate it reports an error, where
		// encoding/json puts U+FFFD: such text is left to ParseTable.
		var err error
		if r.scratch, err = jsontext.AppendUnquote(r.scratch[:0], raw); err != nil {
			r.bad = true
		}
		return string(r.scratch)
	case '{', '[':
		return json.RawMessage(raw)
	default:
		if r.transient[i] {
			return json.Number(raw)
		}
		return json.Number(strings.Clone(raw))
	}
}

// stringForm reports how the JSON string raw, as the decoder read it, may
// be used as sent: verbatim when its text is raw without the quotes (valid
// UTF-8, no escapes), canonical when encoding/json writes its text back as
// raw (valid UTF-8 but U+2028 and U+2029, no escapes but the short ones).
func stringForm(raw string) (verbatim, canonical bool) {
	if !utf8.ValidString(raw) {
		return false, false
	}
	i := strings.IndexByte(raw, '\\')
	verbatim = i < 0
	canonical = strings.IndexByte(raw, "\u2028"[0]) < 0 || // both start with 0xE2
		!strings.Contains(raw, "\u2028") && !strings.Contains(raw, "\u2029")
	for i >= 0 && canonical {
		// The decoder checked the escapes: a backslash is followed by one
		// of "\\/bfnrtu.
		canonical = raw[i+1] != '/' && raw[i+1] != 'u'
		j := strings.IndexByte(raw[i+2:], '\\')
		if j < 0 {
			break
		}
		i += 2 + j
	}
	return verbatim, canonical
}

// appendString appends s as a JSON string the way RowObject writes it
// (encoding/json's Encoder with SetEscapeHTML(false)): that is
// jsontext.AppendQuote's form, but for U+2028 and U+2029, which
// encoding/json escapes. ok is false for invalid UTF-8, which the two write
// differently.
func appendString[S []byte | string](dst []byte, s S) (_ []byte, ok bool) {
	from := len(dst)
	dst, err := jsontext.AppendQuote(dst, s)
	if err != nil {
		return dst, false
	}
	if q := dst[from:]; bytes.Contains(q, lineSeparator) || bytes.Contains(q, paragraphSeparator) {
		q = bytes.ReplaceAll(q, lineSeparator, []byte(`\u2028`))
		q = bytes.ReplaceAll(q, paragraphSeparator, []byte(`\u2029`))
		dst = append(dst[:from], q...)
	}
	return dst, true
}

var (
	lineSeparator      = []byte("\u2028")
	paragraphSeparator = []byte("\u2029")
)

// appendPayload appends the current row as RowObject writes it: the keys
// in column order, strings as Go's encoder writes their decoded text,
// dynamic values compacted. Most cells already are in that form, and are
// copied as sent.
func (r *rowReader) appendPayload(dst []byte) ([]byte, bool) {
	dst = append(dst, '{')
	for j, c := range r.cells {
		if j > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, r.keys[j]...)
		raw := r.text[c.start:c.end]
		switch c.kind {
		case '"':
			if c.canonical {
				dst = append(dst, raw...)
				break
			}
			var err error
			if r.scratch, err = jsontext.AppendUnquote(r.scratch[:0], raw); err != nil {
				return dst, false // see cell
			}
			var ok bool
			if dst, ok = appendString(dst, r.scratch); !ok {
				return dst, false
			}
		case '{', '[':
			if !strings.ContainsAny(raw, " \t\r\n") {
				dst = append(dst, raw...)
				break
			}
			r.compact.Reset()
			if err := json.Compact(&r.compact, []byte(raw)); err != nil {
				return dst, false
			}
			dst = append(dst, r.compact.Bytes()...)
		default: // numbers and literals
			dst = append(dst, raw...)
		}
	}
	return append(dst, '}'), true
}
