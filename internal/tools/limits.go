package tools

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits cap what a tool call returns to an agent. A capped answer always
// says so: its top level gets "truncated": true, a "note" that says what was
// cut and how to get the rest, and "truncation": [{"path", "returned",
// "total"}] for every list that was cut. Nothing is ever cut silently.
type Limits struct {
	// MaxItems is the most elements any list (rows, results, value) keeps.
	MaxItems int
	// MaxBytes is the most bytes of JSON an answer may have; lists are
	// halved (largest first), then long texts cut, until it fits.
	MaxBytes int
	// MaxText is the length long texts are cut to (characters) when cutting
	// lists is not enough.
	MaxText int
}

// DefaultLimits are used for zero fields.
var DefaultLimits = Limits{MaxItems: 200, MaxBytes: 256 << 10, MaxText: 2000}

func (l Limits) withDefaults() Limits {
	if l.MaxItems <= 0 {
		l.MaxItems = DefaultLimits.MaxItems
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultLimits.MaxBytes
	}
	if l.MaxText <= 0 {
		l.MaxText = DefaultLimits.MaxText
	}
	return l
}

// object is a JSON object that keeps its keys' order, so that a capped
// answer reads like Microsoft's.
type object struct {
	keys []string
	vals map[string]any
}

func (o *object) set(k string, v any) {
	if _, ok := o.vals[k]; !ok {
		o.keys = append(o.keys, k)
	}
	o.vals[k] = v
}

// decodeOrdered decodes JSON into *object, []any, string, json.Number,
// bool and nil.
func decodeOrdered(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := decodeValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("tools: trailing data after JSON value")
	}
	return v, nil
}

func decodeValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			o := &object{vals: map[string]any{}}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, _ := kt.(string)
				v, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				o.set(k, v)
			}
			_, err := dec.Token() // '}'
			return o, err
		case '[':
			arr := []any{}
			for dec.More() {
				v, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				arr = append(arr, v)
			}
			_, err := dec.Token() // ']'
			return arr, err
		}
	}
	return tok, nil
}

func encodeOrdered(buf *bytes.Buffer, v any) {
	switch x := v.(type) {
	case *object:
		buf.WriteByte('{')
		for i, k := range x.keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			kb, _ := json.Marshal(k)
			buf.Write(kb)
			buf.WriteByte(':')
			encodeOrdered(buf, x.vals[k])
		}
		buf.WriteByte('}')
	case []any:
		buf.WriteByte('[')
		for i, el := range x {
			if i > 0 {
				buf.WriteByte(',')
			}
			encodeOrdered(buf, el)
		}
		buf.WriteByte(']')
	default:
		b, err := json.Marshal(x)
		if err != nil {
			b = []byte("null")
		}
		buf.Write(b)
	}
}

func encodedSize(v any) int {
	var buf bytes.Buffer
	encodeOrdered(&buf, v)
	return buf.Len()
}

// cut records one list that was shortened.
type cut struct {
	Path     string `json:"path"`
	Returned int    `json:"returned"`
	Total    int    `json:"total"`
}

// list is a list inside the answer, with a way to shorten it in place.
type list struct {
	path string
	get  func() []any
	set  func([]any)
}

// lists finds every list in v (depth first), with its path.
func lists(v any, path string, out *[]list) {
	switch x := v.(type) {
	case *object:
		for _, k := range x.keys {
			k := k
			p := k
			if path != "" {
				p = path + "." + k
			}
			if arr, ok := x.vals[k].([]any); ok {
				if k == "columns" || k == "schema" || k == "Columns" {
					continue // they describe the rows: cutting them would break the table
				}
				*out = append(*out, list{path: p, get: func() []any { return x.vals[k].([]any) }, set: func(a []any) { x.vals[k] = a }})
				for i, el := range arr {
					lists(el, p+"["+strconv.Itoa(i)+"]", out)
				}
				continue
			}
			lists(x.vals[k], p, out)
		}
	case []any:
		for i, el := range x {
			lists(el, path+"["+strconv.Itoa(i)+"]", out)
		}
	}
}

// capResult applies the limits to a tool's JSON answer. It returns the
// answer unchanged when it fits.
func capResult(data []byte, lim Limits) (json.RawMessage, bool) {
	lim = lim.withDefaults()
	if fitsUncapped(data, lim) {
		return data, false
	}
	return capDecoded(data, lim)
}

// fitsUncapped reports, without decoding data, that capDecoded would return
// it unchanged: it is valid JSON, no list in it has more than MaxItems
// elements, and encoded again it could not exceed the byte budget. Most
// answers fit, and decoding one into ordered objects and encoding it again
// to measure it cost about 0.1 ms of CPU per call for a small answer.
//
// Encoding again only lengthens what may come back escaped: <, > and &
// (HTML-escaped, 6 bytes), escape sequences (\b may come back as \u0008),
// and non-ASCII bytes (invalid UTF-8 and U+2028/U+2029 come back as \u
// escapes); whitespace only shrinks. The bound counts each of them at its
// worst. Any array counts, even those capDecoded never cuts (a bare array,
// "columns"): they only send the answer the slow way.
func fitsUncapped(data []byte, lim Limits) bool {
	budget := lim.MaxBytes - 1024 // as in capDecoded
	bound := len(data)
	if bound > budget {
		return false
	}
	var commas []int // per open bracket: commas so far in an array, -1 in an object
	inStr, esc := false, false
	for _, c := range data {
		if c >= 0x80 {
			bound += 5
		}
		if inStr {
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc, bound = true, bound+4
			case c == '"':
				inStr = false
			case c == '<' || c == '>' || c == '&':
				bound += 5
			}
			continue
		}
		switch c {
		case '"':
			inStr = true
		case '[':
			commas = append(commas, 0)
		case '{':
			commas = append(commas, -1)
		case ']', '}':
			if n := len(commas); n > 0 {
				commas = commas[:n-1]
			}
		case ',':
			if n := len(commas); n > 0 && commas[n-1] >= 0 {
				commas[n-1]++
				if commas[n-1] >= lim.MaxItems { // MaxItems+1 elements
					return false
				}
			}
		}
	}
	return bound <= budget && json.Valid(data)
}

// capDecoded is capResult the slow way: decoded, cut, encoded again.
func capDecoded(data []byte, lim Limits) (json.RawMessage, bool) {
	root, err := decodeOrdered(data)
	if err != nil {
		// Not JSON (a text answer): cut by bytes, and say so.
		if len(data) <= lim.MaxBytes {
			return data, false
		}
		text := string(data[:lim.MaxBytes])
		for !utf8.ValidString(text) {
			text = text[:len(text)-1]
		}
		o := &object{vals: map[string]any{}}
		o.set("text", text)
		o.set("truncated", true)
		o.set("note", fmt.Sprintf("Clarion cut this answer to its first %d of %d bytes. Narrow the request to see the rest.", lim.MaxBytes, len(data)))
		var buf bytes.Buffer
		encodeOrdered(&buf, o)
		return buf.Bytes(), true
	}

	cuts := map[string]*cut{}
	var order []string
	record := func(l list, kept, total int) {
		c := cuts[l.path]
		if c == nil {
			c = &cut{Path: l.path, Total: total}
			cuts[l.path] = c
			order = append(order, l.path)
		}
		c.Returned = kept
	}
	var all []list
	lists(root, "", &all)
	for _, l := range all {
		if arr := l.get(); len(arr) > lim.MaxItems {
			record(l, lim.MaxItems, len(arr))
			l.set(arr[:lim.MaxItems])
		}
	}
	// Room for the markers.
	budget := lim.MaxBytes - 1024
	textsCut := false
	for size := encodedSize(root); size > budget; size = encodedSize(root) {
		var best *list
		bestSize := 0
		all = all[:0]
		lists(root, "", &all)
		for i := range all {
			arr := all[i].get()
			if len(arr) < 2 {
				continue
			}
			if s := encodedSize(arr); s > bestSize {
				best, bestSize = &all[i], s
			}
		}
		if best != nil && bestSize > size/8 {
			arr := best.get()
			total := len(arr)
			if c := cuts[best.path]; c != nil {
				total = c.Total
			}
			record(*best, len(arr)/2, total)
			best.set(arr[:len(arr)/2])
			continue
		}
		if !textsCut {
			textsCut = true
			if cutTexts(root, lim.MaxText) {
				continue
			}
		}
		// Nothing left to cut: give the agent the note alone.
		o := &object{vals: map[string]any{}}
		o.set("truncated", true)
		o.set("note", fmt.Sprintf("The answer (%d bytes) is larger than Clarion's limit of %d bytes even after cutting lists and texts. Narrow the request (fewer columns, fewer rows, a shorter time range).", len(data), lim.MaxBytes))
		var buf bytes.Buffer
		encodeOrdered(&buf, o)
		return buf.Bytes(), true
	}
	if len(order) == 0 && !textsCut {
		return data, false
	}

	var parts []string
	var cutList []any
	for _, p := range order {
		c := cuts[p]
		parts = append(parts, fmt.Sprintf("%s holds %d of %d items", c.Path, c.Returned, c.Total))
		o := &object{vals: map[string]any{}}
		o.set("path", c.Path)
		o.set("returned", c.Returned)
		o.set("total", c.Total)
		cutList = append(cutList, o)
	}
	note := "Clarion capped this answer (at most " + strconv.Itoa(lim.MaxItems) + " items per list and " + strconv.Itoa(lim.MaxBytes) + " bytes)"
	if len(parts) > 0 {
		note += ": " + strings.Join(parts, "; ")
	}
	if textsCut {
		note += "; texts longer than " + strconv.Itoa(lim.MaxText) + " characters were cut (they end with …)"
	}
	note += ". To see the rest, narrow the request: filter, project or summarize in the query (where, project, summarize, take), use a shorter time range, or page with skip and top."

	obj, ok := root.(*object)
	if !ok {
		obj = &object{vals: map[string]any{}}
		obj.set("result", root)
	}
	obj.set("truncated", true)
	obj.set("note", note)
	if cutList == nil {
		cutList = []any{}
	}
	obj.set("truncation", cutList)
	var buf bytes.Buffer
	encodeOrdered(&buf, obj)
	return buf.Bytes(), true
}

// cutTexts shortens every string longer than max characters; it reports
// whether it cut any.
func cutTexts(v any, max int) bool {
	changed := false
	shorten := func(s string) (string, bool) {
		if utf8.RuneCountInString(s) <= max {
			return s, false
		}
		r := []rune(s)
		return string(r[:max]) + "…", true
	}
	switch x := v.(type) {
	case *object:
		for _, k := range x.keys {
			if s, ok := x.vals[k].(string); ok {
				if ns, c := shorten(s); c {
					x.vals[k], changed = ns, true
				}
				continue
			}
			changed = cutTexts(x.vals[k], max) || changed
		}
	case []any:
		for i, el := range x {
			if s, ok := el.(string); ok {
				if ns, c := shorten(s); c {
					x[i], changed = ns, true
				}
				continue
			}
			changed = cutTexts(el, max) || changed
		}
	}
	return changed
}
