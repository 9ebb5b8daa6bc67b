package sentinel

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidResponse marks an answer from Microsoft that is not valid JSON
// where JSON was due: a truncated or garbled body. Such failures are
// transient (see Transient): asking again usually works.
var ErrInvalidResponse = errors.New("sentinel: invalid response from Microsoft")

// Column is one column of a query result.
type Column struct {
	Name string
	Type string
}

// Table is one KQL result set.
//
// Cells are decoded so that nothing Microsoft sent is lost: strings as
// string, numbers as json.Number (the exact digits), booleans as bool, null as
// nil, and objects or arrays (dynamic values) as json.RawMessage.
type Table struct {
	Name    string
	Columns []Column
	Rows    [][]any

	// objects holds the rows exactly as sent when Microsoft sent them as JSON
	// objects rather than arrays, so that RowObject keeps absent keys absent.
	objects []json.RawMessage
}

// ColumnIndex returns the index of the named column, or -1. An exact match
// wins; otherwise the first case-insensitive match is returned.
func (t *Table) ColumnIndex(name string) int {
	for i, c := range t.Columns {
		if c.Name == name {
			return i
		}
	}
	for i, c := range t.Columns {
		if strings.EqualFold(c.Name, name) {
			return i
		}
	}
	return -1
}

// RowObject returns row i as a JSON object whose keys are the column names in
// column order: the row as Microsoft sent it. It returns nil when i is out of
// range.
func (t *Table) RowObject(i int) json.RawMessage {
	if t == nil || i < 0 || i >= len(t.Rows) {
		return nil
	}
	if i < len(t.objects) && t.objects[i] != nil {
		return bytes.Clone(t.objects[i])
	}
	var b bytes.Buffer
	b.WriteByte('{')
	row := t.Rows[i]
	for j, c := range t.Columns {
		if j > 0 {
			b.WriteByte(',')
		}
		writeJSONString(&b, c.Name)
		b.WriteByte(':')
		var v any
		if j < len(row) {
			v = row[j]
		}
		writeJSONValue(&b, v)
	}
	b.WriteByte('}')
	return b.Bytes()
}

func writeJSONString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false) // keep "<", ">" and "&" as Microsoft sent them
	_ = enc.Encode(s)        // a string always encodes
	b.Truncate(b.Len() - 1)  // Encode appends a newline
}

func writeJSONValue(b *bytes.Buffer, v any) {
	switch v := v.(type) {
	case nil:
		b.WriteString("null")
	case string:
		writeJSONString(b, v)
	case json.Number:
		if v == "" || !json.Valid([]byte(v)) {
			writeJSONString(b, string(v))
			return
		}
		b.WriteString(string(v))
	case json.RawMessage:
		if err := json.Compact(b, v); err != nil {
			b.WriteString("null")
		}
	case bool:
		if v {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	default:
		// Tables built by hand may hold other Go values.
		var tmp bytes.Buffer
		enc := json.NewEncoder(&tmp)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			b.WriteString("null")
			return
		}
		b.Write(bytes.TrimRight(tmp.Bytes(), "\n"))
	}
}

// ParseTable reads one KQL result set from data. Accepted shapes:
//
//   - the Log Analytics query shape {"tables":[{"name","columns":[{"name","type"}],"rows":[[...]]}]}
//     (the table named PrimaryResult, else the first);
//   - Kusto v2 frames, a JSON array of frames (the DataTable whose TableKind
//     is PrimaryResult);
//   - one table object {"name","columns","rows"};
//   - an array of row objects (columns in first-seen key order; each row is
//     kept as sent for RowObject);
//   - any of the above double-encoded as a JSON string.
//
// Invalid JSON wraps ErrInvalidResponse. A valid JSON error object
// {"error":{"code","message"}} becomes an *UpstreamError.
func ParseTable(data []byte) (*Table, error) {
	return parseTable(data, 0)
}

func parseTable(data []byte, depth int) (*Table, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: empty result", ErrInvalidResponse)
	}
	if !json.Valid(data) {
		return nil, fmt.Errorf("%w: result is not valid JSON", ErrInvalidResponse)
	}
	switch data[0] {
	case '{':
		return parseTableObject(data)
	case '[':
		return parseTableArray(data)
	case '"':
		if depth > 0 {
			break
		}
		var inner string
		if err := json.Unmarshal(data, &inner); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidResponse, err)
		}
		return parseTable([]byte(inner), depth+1)
	}
	return nil, errors.New("sentinel: result holds no table")
}

type wireColumn struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	ColumnName string `json:"ColumnName"`
	ColumnType string `json:"ColumnType"`
	DataType   string `json:"DataType"`
}

func (c wireColumn) column() Column {
	col := Column{Name: c.Name, Type: c.Type}
	if col.Name == "" {
		col.Name = c.ColumnName
	}
	if col.Type == "" {
		col.Type = c.ColumnType
	}
	if col.Type == "" {
		col.Type = c.DataType
	}
	return col
}

// wireTable matches the Log Analytics table and (field names being matched
// case-insensitively) the Kusto v1/v2 DataTable.
type wireTable struct {
	Name      string            `json:"name"`
	TableName string            `json:"TableName"`
	TableKind string            `json:"TableKind"`
	FrameType string            `json:"FrameType"`
	Columns   []wireColumn      `json:"columns"`
	Rows      []json.RawMessage `json:"rows"`
}

type wireError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func parseTableObject(data []byte) (*Table, error) {
	var top struct {
		Tables  []wireTable       `json:"tables"`
		Columns []wireColumn      `json:"columns"`
		Rows    []json.RawMessage `json:"rows"`
		Name    string            `json:"name"`
		Error   json.RawMessage   `json:"error"`
	}
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("sentinel: result: %v", err)
	}
	switch {
	case len(top.Tables) > 0:
		pick := 0
		for i, wt := range top.Tables {
			if strings.EqualFold(wt.Name, "PrimaryResult") || strings.EqualFold(wt.TableName, "PrimaryResult") {
				pick = i
				break
			}
		}
		return buildTable(top.Tables[pick])
	case top.Columns != nil:
		return buildTable(wireTable{Name: top.Name, Columns: top.Columns, Rows: top.Rows})
	case len(top.Error) > 0 && top.Error[0] == '{':
		var we wireError
		_ = json.Unmarshal(top.Error, &we)
		return nil, errorFromMessage(we.Code, we.Message)
	}
	return nil, errors.New("sentinel: result holds no table")
}

func parseTableArray(data []byte) (*Table, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(data, &items); err != nil {
		return nil, fmt.Errorf("sentinel: result: %v", err)
	}
	if len(items) == 0 {
		return &Table{}, nil
	}
	isObjects := true
	for _, it := range items {
		if it = bytes.TrimSpace(it); len(it) == 0 || it[0] != '{' {
			isObjects = false
			break
		}
	}
	if !isObjects {
		return nil, errors.New("sentinel: result is an array of neither frames nor row objects")
	}
	// Kusto v2: frames carry FrameType.
	var probe struct {
		FrameType *string `json:"FrameType"`
	}
	if err := json.Unmarshal(items[0], &probe); err == nil && probe.FrameType != nil {
		return parseFrames(items)
	}
	return parseRowObjects(items)
}

func parseFrames(frames []json.RawMessage) (*Table, error) {
	var fallback *wireTable
	for _, f := range frames {
		var wt wireTable
		if err := json.Unmarshal(f, &wt); err != nil {
			return nil, fmt.Errorf("sentinel: frame: %v", err)
		}
		if !strings.EqualFold(wt.FrameType, "DataTable") {
			continue
		}
		if strings.EqualFold(wt.TableKind, "PrimaryResult") {
			if wt.Name == "" {
				wt.Name = wt.TableName
			}
			return buildTable(wt)
		}
		if fallback == nil && wt.TableKind == "" {
			fallback = &wt
		}
	}
	if fallback != nil {
		return buildTable(*fallback)
	}
	return nil, errors.New("sentinel: frames hold no PrimaryResult table")
}

func parseRowObjects(items []json.RawMessage) (*Table, error) {
	t := &Table{objects: make([]json.RawMessage, len(items))}
	index := map[string]int{}
	type kv struct {
		key string
		val any
	}
	rows := make([][]kv, len(items))
	for i, it := range items {
		dec := json.NewDecoder(bytes.NewReader(it))
		dec.UseNumber()
		if _, err := dec.Token(); err != nil { // '{'
			return nil, fmt.Errorf("sentinel: row %d: %v", i, err)
		}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return nil, fmt.Errorf("sentinel: row %d: %v", i, err)
			}
			key, _ := tok.(string)
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return nil, fmt.Errorf("sentinel: row %d: %v", i, err)
			}
			v, err := decodeCell(raw)
			if err != nil {
				return nil, fmt.Errorf("sentinel: row %d: column %s: %v", i, key, err)
			}
			if _, ok := index[key]; !ok {
				index[key] = len(t.Columns)
				t.Columns = append(t.Columns, Column{Name: key})
			}
			rows[i] = append(rows[i], kv{key, v})
		}
		t.objects[i] = bytes.Clone(it)
	}
	t.Rows = make([][]any, len(items))
	for i, r := range rows {
		row := make([]any, len(t.Columns))
		for _, c := range r {
			row[index[c.key]] = c.val
		}
		t.Rows[i] = row
	}
	return t, nil
}

func buildTable(wt wireTable) (*Table, error) {
	t := &Table{Name: wt.Name, Columns: make([]Column, len(wt.Columns))}
	if t.Name == "" {
		t.Name = wt.TableName
	}
	for i, c := range wt.Columns {
		t.Columns[i] = c.column()
	}
	t.Rows = make([][]any, 0, len(wt.Rows))
	for i, raw := range wt.Rows {
		var cells []json.RawMessage
		if err := json.Unmarshal(raw, &cells); err != nil {
			// Kusto v2 puts an error object in place of a row when the
			// query failed part-way.
			return nil, fmt.Errorf("sentinel: row %d is not an array (query error in the result)", i)
		}
		if len(cells) != len(t.Columns) {
			return nil, fmt.Errorf("sentinel: row %d has %d cells for %d columns", i, len(cells), len(t.Columns))
		}
		row := make([]any, len(cells))
		for j, c := range cells {
			v, err := decodeCell(c)
			if err != nil {
				return nil, fmt.Errorf("sentinel: row %d: column %s: %v", i, t.Columns[j].Name, err)
			}
			row[j] = v
		}
		t.Rows = append(t.Rows, row)
	}
	return t, nil
}

// decodeCell turns one JSON value into the cell representation documented on
// Table.
func decodeCell(raw json.RawMessage) (any, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil, nil
	}
	switch raw[0] {
	case 'n':
		return nil, nil
	case 't':
		return true, nil
	case 'f':
		return false, nil
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		return s, nil
	case '{', '[':
		return json.RawMessage(bytes.Clone(raw)), nil
	default:
		return json.Number(string(raw)), nil
	}
}
