package tools

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// kind is what a parameter holds; it decides both the JSON schema the tool
// publishes and the check its value must pass before any call upstream.
type kind int

const (
	kString     kind = iota // free text: at most maxLen characters, no control characters
	kKQL                    // one KQL query: not blank, at most MaxKQL characters
	kDateTime               // ISO 8601 date and time (or date), sent on as RFC 3339 UTC
	kInt                    // an integer in [min, max]
	kBool                   // true or false
	kEnum                   // one of enum (case-insensitive), sent on in the catalog's spelling
	kGUID                   // a GUID, sent on in lower case
	kHash                   // SHA-1, SHA-256 or MD5 in hex, sent on in lower case
	kIP                     // an IPv4 or IPv6 address (net/netip), sent on canonical
	kIncidentID             // a Sentinel incident id: a GUID or a number
	kAlertID                // an alert id: letters, digits, _ . : -
	kMachineID              // a device id (40 hex digits) or a computer / DNS name
	kUserID                 // a UPN, account name, DOMAIN\name, SID or object id
	kTableNames             // a list of table names
)

type param struct {
	name     string
	desc     string
	kind     kind
	required bool
	enum     []string
	min, max int
	maxLen   int
}

var (
	guidRE      = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	hashRE      = regexp.MustCompile(`^(?:[0-9a-fA-F]{32}|[0-9a-fA-F]{40}|[0-9a-fA-F]{64})$`)
	numberRE    = regexp.MustCompile(`^[0-9]{1,18}$`)
	alertIDRE   = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,128}$`)
	machineIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$`)
	userIDRE    = regexp.MustCompile(`^[A-Za-z0-9._@'+$\\-]{1,256}$`)
	tableRE     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,99}$`)
)

// schemaOf builds the JSON schema of a tool's arguments.
func schemaOf(params []param) json.RawMessage {
	props := map[string]any{}
	required := []string{}
	for _, p := range params {
		s := map[string]any{"description": p.desc}
		switch p.kind {
		case kString:
			s["type"], s["maxLength"] = "string", p.maxLen
			if p.required {
				s["minLength"] = 1
			}
		case kKQL:
			s["type"], s["minLength"], s["maxLength"] = "string", 1, MaxKQL
		case kDateTime:
			s["type"], s["format"] = "string", "date-time"
		case kInt:
			s["type"], s["minimum"], s["maximum"] = "integer", p.min, p.max
		case kBool:
			s["type"] = "boolean"
		case kEnum:
			s["type"], s["enum"] = "string", p.enum
		case kGUID:
			s["type"], s["pattern"] = "string", guidRE.String()
		case kHash:
			s["type"], s["pattern"] = "string", hashRE.String()
		case kIP:
			s["type"] = "string"
		case kIncidentID:
			s["type"], s["pattern"] = "string", "^(?:"+guidRE.String()[1:len(guidRE.String())-1]+"|[0-9]{1,18})$"
		case kAlertID:
			s["type"], s["pattern"] = "string", alertIDRE.String()
		case kMachineID:
			s["type"], s["pattern"] = "string", machineIDRE.String()
		case kUserID:
			s["type"], s["pattern"] = "string", userIDRE.String()
		case kTableNames:
			s["type"], s["maxItems"] = "array", MaxTableNames
			s["items"] = map[string]any{"type": "string", "pattern": tableRE.String()}
			if p.required {
				s["minItems"] = 1
			}
		}
		props[p.name] = s
		if p.required {
			required = append(required, p.name)
		}
	}
	b, err := json.Marshal(map[string]any{"type": "object", "properties": props, "required": required, "additionalProperties": false})
	if err != nil {
		panic(err)
	}
	return b
}

// validate checks the raw arguments of a call against the tool's
// parameters and returns them as they are sent to Microsoft: normalised,
// and without keys that are absent or null.
func (t *Tool) validate(raw json.RawMessage) (map[string]any, *Error) {
	in := map[string]json.RawMessage{}
	if b := bytes.TrimSpace(raw); len(b) > 0 && !bytes.Equal(b, []byte("null")) {
		if b[0] != '{' {
			return nil, invalid("", "The arguments must be a JSON object.")
		}
		if err := json.Unmarshal(b, &in); err != nil {
			return nil, invalid("", "The arguments are not valid JSON.")
		}
	}
	known := map[string]bool{}
	for _, p := range t.params {
		known[p.name] = true
	}
	var unknown []string
	for k := range in {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, invalid(unknown[0], fmt.Sprintf("%s does not take %s. Its parameters: %s.", t.Name, quoteList(unknown), t.paramList()))
	}
	out := map[string]any{}
	for _, p := range t.params {
		v, present := in[p.name]
		if !present || bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			if p.required {
				return nil, invalid(p.name, fmt.Sprintf("%s is required: %s", p.name, p.desc))
			}
			continue
		}
		val, err := p.check(v)
		if err != nil {
			return nil, err
		}
		if val != nil {
			out[p.name] = val
		}
	}
	if t.check != nil {
		if err := t.check(out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (t *Tool) paramList() string {
	if len(t.params) == 0 {
		return "none"
	}
	names := make([]string, len(t.params))
	for i, p := range t.params {
		names[i] = p.name
	}
	return strings.Join(names, ", ")
}

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

// check validates one present value and returns what is sent on (nil:
// nothing, e.g. an empty optional text).
func (p param) check(raw json.RawMessage) (any, *Error) {
	bad := func(format string, args ...any) (any, *Error) {
		return nil, invalid(p.name, p.name+" "+fmt.Sprintf(format, args...))
	}
	switch p.kind {
	case kBool:
		var b bool
		if json.Unmarshal(raw, &b) != nil {
			return bad("must be true or false.")
		}
		return b, nil
	case kInt:
		var f float64
		if json.Unmarshal(raw, &f) != nil {
			// Agents sometimes send numbers as text.
			var s string
			if json.Unmarshal(raw, &s) != nil {
				return bad("must be a whole number from %d to %d.", p.min, p.max)
			}
			n, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			if err != nil {
				return bad("must be a whole number from %d to %d.", p.min, p.max)
			}
			f = n
		}
		if f != math.Trunc(f) || f < float64(p.min) || f > float64(p.max) {
			return bad("must be a whole number from %d to %d.", p.min, p.max)
		}
		return int(f), nil
	case kTableNames:
		var names []string
		if json.Unmarshal(raw, &names) != nil {
			// One name given as a string, or a comma-separated list.
			var s string
			if json.Unmarshal(raw, &s) != nil {
				return bad("must be a list of table names, e.g. [\"DeviceProcessEvents\"].")
			}
			names = strings.FieldsFunc(s, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
		}
		if len(names) > MaxTableNames {
			return bad("names %d tables; at most %d are allowed.", len(names), MaxTableNames)
		}
		if p.required && len(names) == 0 {
			return bad("must name at least one table.")
		}
		out := make([]string, 0, len(names))
		for _, n := range names {
			n = strings.TrimSpace(n)
			if !tableRE.MatchString(n) {
				return bad("holds %q, which is not a table name (letters, digits and _).", clip(n, 40))
			}
			out = append(out, n)
		}
		if len(out) == 0 {
			return nil, nil
		}
		return out, nil
	}

	// Every other kind is text; numbers are accepted for ids.
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		var n json.Number
		if (p.kind == kIncidentID || p.kind == kAlertID || p.kind == kMachineID || p.kind == kUserID) && json.Unmarshal(raw, &n) == nil {
			s = n.String()
		} else {
			return bad("must be a string.")
		}
	}
	if !utf8.ValidString(s) {
		return bad("is not valid UTF-8 text.")
	}
	if p.kind != kKQL {
		s = strings.TrimSpace(s)
	}
	if s == "" && p.kind != kKQL {
		if p.required {
			return bad("is required: %s", p.desc)
		}
		return nil, nil
	}
	switch p.kind {
	case kString:
		if n := utf8.RuneCountInString(s); n > p.maxLen {
			return bad("is %d characters long; at most %d are allowed.", n, p.maxLen)
		}
		if strings.IndexFunc(s, unicode.IsControl) >= 0 {
			return bad("must not hold control characters.")
		}
		return s, nil
	case kKQL:
		if strings.TrimSpace(s) == "" {
			return bad("is required: give one KQL query.")
		}
		if n := utf8.RuneCountInString(s); n > MaxKQL {
			return bad("is %d characters long; Microsoft accepts at most %d characters of KQL. Shorten the query (fewer columns, shorter names, no comments).", n, MaxKQL)
		}
		if strings.ContainsRune(s, 0) {
			return bad("must not hold NUL characters.")
		}
		return s, nil
	case kDateTime:
		t, ok := parseTime(s)
		if !ok {
			return bad("%q is not an ISO 8601 date and time, e.g. 2024-06-21T08:00:00Z.", clip(s, 40))
		}
		return t.UTC().Format(time.RFC3339Nano), nil
	case kEnum:
		for _, e := range p.enum {
			if strings.EqualFold(strings.Join(strings.Fields(s), " "), e) {
				return e, nil
			}
		}
		return bad("%q is not one of: %s.", clip(s, 40), strings.Join(p.enum, ", "))
	case kGUID:
		if !guidRE.MatchString(s) {
			return bad("%q is not a GUID (like 9f3c1f5e-0c4b-4a4e-9d0a-3f1e2b7c6d5a).", clip(s, 40))
		}
		return strings.ToLower(s), nil
	case kHash:
		if !hashRE.MatchString(s) {
			return bad("%q is not a file hash: give a SHA-1 (40 hex digits), SHA-256 (64) or MD5 (32).", clip(s, 70))
		}
		return strings.ToLower(s), nil
	case kIP:
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return bad("%q is not an IPv4 or IPv6 address.", clip(s, 50))
		}
		return a.Unmap().String(), nil
	case kIncidentID:
		if guidRE.MatchString(s) {
			return strings.ToLower(s), nil
		}
		if numberRE.MatchString(s) {
			return s, nil
		}
		return bad("%q is not a Sentinel incident id: give the incident's GUID or its numeric Sentinel incident number (ListIncidents shows both).", clip(s, 50))
	case kAlertID:
		if !alertIDRE.MatchString(s) {
			return bad("%q is not an alert id (letters, digits, _ . : - only).", clip(s, 50))
		}
		return s, nil
	case kMachineID:
		if !machineIDRE.MatchString(s) {
			return bad("%q is not a device id (40 hex digits) or computer name.", clip(s, 50))
		}
		return s, nil
	case kUserID:
		if !userIDRE.MatchString(s) {
			return bad("%q is not a user: give a user principal name, account name, SID or Entra object id.", clip(s, 50))
		}
		return s, nil
	}
	return nil, invalid(p.name, "unsupported parameter")
}

// parseTime reads ISO 8601 forms: RFC 3339 with or without fraction, with
// a space instead of T, without a zone (UTC), or a date alone.
func parseTime(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00",
		"2006-01-02 15:04:05.999999999", "2006-01-02T15:04Z07:00", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			if t.Year() < 1970 || t.Year() > 2200 {
				return time.Time{}, false
			}
			return t, true
		}
	}
	return time.Time{}, false
}

// clip shortens a value quoted back in an error message.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "…"
}
