package kql

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Type is a Kusto scalar type name, spelled as the Log Analytics query API
// spells it in a result's column list.
type Type string

// The scalar types the evaluator knows.
const (
	TypeString   Type = "string"
	TypeInt      Type = "int"
	TypeLong     Type = "long"
	TypeReal     Type = "real"
	TypeBool     Type = "bool"
	TypeDatetime Type = "datetime"
	TypeTimespan Type = "timespan"
	TypeDynamic  Type = "dynamic"
	TypeGUID     Type = "guid"
)

// Values held in a Table's rows, by column type:
//
//	string, guid  string ("" for a missing value: Kusto strings are never null)
//	int, long     int64
//	real          float64
//	bool          bool
//	datetime      time.Time (UTC, 100 ns precision)
//	timespan      time.Duration (100 ns precision)
//	dynamic       any JSON value as encoding/json decodes it (map[string]any,
//	              []any, string, float64, bool) or nil
//
// nil is null for every type but string.

// Tick is Kusto's time resolution: 100 ns.
const Tick = 100 * time.Nanosecond

func isNumeric(t Type) bool { return t == TypeInt || t == TypeLong || t == TypeReal }

func isStringy(t Type) bool { return t == TypeString || t == TypeGUID }

// ParseDatetime parses the datetime forms seen in Microsoft payloads and in
// KQL datetime(...) literals: a date, optionally followed by 'T' or a space
// and a time with 0 to 9 fractional digits (kept to 100 ns, as Kusto does),
// and an optional zone: 'Z', '+hh:mm', '+hhmm' or none (UTC). The result is in
// UTC.
func ParseDatetime(s string) (time.Time, error) {
	orig := s
	s = strings.TrimSpace(s)
	bad := func() (time.Time, error) {
		return time.Time{}, fmt.Errorf("kql: invalid datetime %q", orig)
	}
	if len(s) < 10 || s[4] != '-' || s[7] != '-' {
		return bad()
	}
	year, err1 := strconv.Atoi(s[0:4])
	month, err2 := strconv.Atoi(s[5:7])
	day, err3 := strconv.Atoi(s[8:10])
	if err1 != nil || err2 != nil || err3 != nil {
		return bad()
	}
	s = s[10:]
	var hour, minute, sec, nsec int
	if s != "" && (s[0] == 'T' || s[0] == 't' || s[0] == ' ') {
		s = s[1:]
		if len(s) < 5 || s[2] != ':' {
			return bad()
		}
		var err error
		if hour, err = strconv.Atoi(s[0:2]); err != nil {
			return bad()
		}
		if minute, err = strconv.Atoi(s[3:5]); err != nil {
			return bad()
		}
		s = s[5:]
		if len(s) >= 3 && s[0] == ':' {
			if sec, err = strconv.Atoi(s[1:3]); err != nil {
				return bad()
			}
			s = s[3:]
			if s != "" && s[0] == '.' {
				s = s[1:]
				n := 0
				for n < len(s) && s[n] >= '0' && s[n] <= '9' {
					n++
				}
				if n == 0 {
					return bad()
				}
				frac := s[:n]
				s = s[n:]
				if len(frac) > 9 {
					frac = frac[:9]
				}
				frac += strings.Repeat("0", 9-len(frac))
				nsec, _ = strconv.Atoi(frac)
			}
		}
	}
	offset := 0
	s = strings.TrimSpace(s)
	switch {
	case s == "" || s == "Z" || s == "z":
	case s[0] == '+' || s[0] == '-':
		sign := 1
		if s[0] == '-' {
			sign = -1
		}
		z := strings.ReplaceAll(s[1:], ":", "")
		if len(z) != 4 && len(z) != 2 {
			return bad()
		}
		oh, err := strconv.Atoi(z[0:2])
		if err != nil {
			return bad()
		}
		om := 0
		if len(z) == 4 {
			if om, err = strconv.Atoi(z[2:4]); err != nil {
				return bad()
			}
		}
		offset = sign * (oh*3600 + om*60)
	default:
		return bad()
	}
	if month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || sec > 60 {
		return bad()
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.FixedZone("", offset))
	if t.Day() != day {
		return bad() // e.g. 2024-02-30
	}
	return t.UTC().Truncate(Tick), nil
}

// FormatDatetime writes t as the Log Analytics query API does: UTC, seven
// fractional digits, 'Z'.
func FormatDatetime(t time.Time) string {
	return t.UTC().Truncate(Tick).Format("2006-01-02T15:04:05.0000000Z")
}

// FormatTimespan writes d as Kusto does: [-][d.]hh:mm:ss[.fffffff].
func FormatTimespan(d time.Duration) string {
	var b strings.Builder
	if d < 0 {
		b.WriteByte('-')
		d = -d
	}
	d = d.Truncate(Tick)
	days := d / (24 * time.Hour)
	d -= days * 24 * time.Hour
	h := d / time.Hour
	d -= h * time.Hour
	m := d / time.Minute
	d -= m * time.Minute
	s := d / time.Second
	d -= s * time.Second
	if days > 0 {
		fmt.Fprintf(&b, "%d.", days)
	}
	fmt.Fprintf(&b, "%02d:%02d:%02d", h, m, s)
	if d > 0 {
		fmt.Fprintf(&b, ".%07d", int64(d/Tick))
	}
	return b.String()
}

// timespanUnits maps KQL timespan literal suffixes to their length.
var timespanUnits = map[string]time.Duration{
	"d": 24 * time.Hour, "day": 24 * time.Hour, "days": 24 * time.Hour,
	"h": time.Hour, "hr": time.Hour, "hrs": time.Hour, "hour": time.Hour, "hours": time.Hour,
	"m": time.Minute, "min": time.Minute, "minute": time.Minute, "minutes": time.Minute,
	"s": time.Second, "sec": time.Second, "second": time.Second, "seconds": time.Second,
	"ms": time.Millisecond, "milli": time.Millisecond, "millis": time.Millisecond,
	"millisecond": time.Millisecond, "milliseconds": time.Millisecond,
	"microsecond": time.Microsecond, "microseconds": time.Microsecond,
	"tick": Tick, "ticks": Tick,
}

// parseTimespanText parses the text of a timespan(...) literal: either a
// number with a unit ("15m") or the clock form "[d.]hh:mm[:ss[.fffffff]]".
func parseTimespanText(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	neg := false
	if strings.HasPrefix(s, "-") {
		neg = true
		s = s[1:]
	}
	var d time.Duration
	if strings.Contains(s, ":") {
		days := 0
		clock := s
		if i := strings.Index(s, "."); i >= 0 && i < strings.Index(s, ":") {
			n, err := strconv.Atoi(s[:i])
			if err != nil {
				return 0, fmt.Errorf("kql: invalid timespan %q", s)
			}
			days = n
			clock = s[i+1:]
		}
		t, err := ParseDatetime("2000-01-01T" + clock + "Z")
		if err != nil {
			return 0, fmt.Errorf("kql: invalid timespan %q", s)
		}
		d = time.Duration(days)*24*time.Hour + t.Sub(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC))
	} else {
		i := 0
		for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
			i++
		}
		num, unit := s[:i], strings.ToLower(s[i:])
		f, err := strconv.ParseFloat(num, 64)
		if err != nil {
			return 0, fmt.Errorf("kql: invalid timespan %q", s)
		}
		if unit == "" {
			unit = "d"
		}
		u, ok := timespanUnits[unit]
		if !ok {
			return 0, fmt.Errorf("kql: invalid timespan unit %q", unit)
		}
		d = time.Duration(math.Round(f * float64(u)))
	}
	if neg {
		d = -d
	}
	return d.Truncate(Tick), nil
}

// ToValue converts v (as JSON decoding or a Go caller produces it) to the
// evaluator's value for a column of type t. Strings are parsed for datetime,
// timespan, numbers and bools; for dynamic columns a string holding JSON
// (as Log Analytics returns dynamic values) is decoded. The string "None"
// (Python's null, seen in real exported rows) is null for non-string types.
func ToValue(t Type, v any) (any, error) {
	if v == nil {
		if isStringy(t) {
			return "", nil
		}
		return nil, nil
	}
	if s, ok := v.(string); ok && !isStringy(t) && (s == "None" || s == "") {
		return nil, nil
	}
	switch t {
	case TypeString, TypeGUID:
		switch x := v.(type) {
		case string:
			return x, nil
		case time.Time:
			return FormatDatetime(x), nil
		case json.Number:
			return x.String(), nil
		case map[string]any, []any:
			b, err := json.Marshal(x)
			return string(b), err
		default:
			return fmt.Sprint(x), nil
		}
	case TypeInt, TypeLong:
		switch x := v.(type) {
		case int:
			return int64(x), nil
		case int32:
			return int64(x), nil
		case int64:
			return x, nil
		case float64:
			return int64(x), nil
		case json.Number:
			if n, err := x.Int64(); err == nil {
				return n, nil
			}
			f, err := x.Float64()
			return int64(f), err
		case string:
			n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("kql: %q is not a %s", x, t)
			}
			return n, nil
		}
	case TypeReal:
		switch x := v.(type) {
		case int:
			return float64(x), nil
		case int64:
			return float64(x), nil
		case float64:
			return x, nil
		case json.Number:
			return x.Float64()
		case string:
			f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
			if err != nil {
				return nil, fmt.Errorf("kql: %q is not a real", x)
			}
			return f, nil
		}
	case TypeBool:
		switch x := v.(type) {
		case bool:
			return x, nil
		case string:
			b, err := strconv.ParseBool(strings.TrimSpace(x))
			if err != nil {
				return nil, fmt.Errorf("kql: %q is not a bool", x)
			}
			return b, nil
		}
	case TypeDatetime:
		switch x := v.(type) {
		case time.Time:
			return x.UTC().Truncate(Tick), nil
		case string:
			return ParseDatetime(x)
		}
	case TypeTimespan:
		switch x := v.(type) {
		case time.Duration:
			return x.Truncate(Tick), nil
		case string:
			return parseTimespanText(x)
		}
	case TypeDynamic:
		switch x := v.(type) {
		case string:
			trimmed := strings.TrimSpace(x)
			if trimmed != "" && strings.ContainsAny(trimmed[:1], "{[") {
				var out any
				if err := json.Unmarshal([]byte(trimmed), &out); err == nil {
					return out, nil
				}
			}
			return x, nil
		case json.Number:
			return x.Float64()
		default:
			// Round-trip through JSON so that Go structs, typed slices and
			// numbers of any kind become plain JSON values.
			b, err := json.Marshal(x)
			if err != nil {
				return nil, fmt.Errorf("kql: dynamic value: %w", err)
			}
			var out any
			if err := json.Unmarshal(b, &out); err != nil {
				return nil, fmt.Errorf("kql: dynamic value: %w", err)
			}
			return out, nil
		}
	}
	return nil, fmt.Errorf("kql: cannot use %T as %s", v, t)
}

// ToJSON converts a value of type t to what the Log Analytics query API puts
// in a result row: datetimes as ISO strings with seven fractional digits,
// timespans in Kusto's clock form, dynamic values as JSON text, nulls as nil.
func ToJSON(t Type, v any) any {
	if v == nil {
		return nil
	}
	switch t {
	case TypeDatetime:
		if x, ok := v.(time.Time); ok {
			return FormatDatetime(x)
		}
	case TypeTimespan:
		if x, ok := v.(time.Duration); ok {
			return FormatTimespan(x)
		}
	case TypeDynamic:
		b, err := json.Marshal(v)
		if err != nil {
			return nil
		}
		return string(b)
	case TypeReal:
		if x, ok := v.(float64); ok && (math.IsNaN(x) || math.IsInf(x, 0)) {
			return strconv.FormatFloat(x, 'g', -1, 64)
		}
	}
	return v
}

// toText renders any value as Kusto's tostring() does.
func toText(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case time.Time:
		return FormatDatetime(x)
	case time.Duration:
		return FormatTimespan(x)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case int64:
		return strconv.FormatInt(x, 10)
	case bool:
		if x {
			return "true"
		}
		return "false"
	case map[string]any, []any:
		b, _ := json.Marshal(x)
		return string(b)
	default:
		return fmt.Sprint(x)
	}
}

// compareValues orders two non-null values of comparable types. ok is false
// when they cannot be compared.
func compareValues(a, b any) (c int, ok bool) {
	switch x := a.(type) {
	case string:
		y, ok := b.(string)
		if !ok {
			return 0, false
		}
		return strings.Compare(x, y), true
	case int64:
		switch y := b.(type) {
		case int64:
			return cmpOrdered(x, y), true
		case float64:
			return cmpOrdered(float64(x), y), true
		}
	case float64:
		switch y := b.(type) {
		case int64:
			return cmpOrdered(x, float64(y)), true
		case float64:
			return cmpOrdered(x, y), true
		}
	case bool:
		y, ok := b.(bool)
		if !ok {
			return 0, false
		}
		switch {
		case x == y:
			return 0, true
		case !x:
			return -1, true
		default:
			return 1, true
		}
	case time.Time:
		y, ok := b.(time.Time)
		if !ok {
			return 0, false
		}
		return x.Compare(y), true
	case time.Duration:
		y, ok := b.(time.Duration)
		if !ok {
			return 0, false
		}
		return cmpOrdered(x, y), true
	case map[string]any, []any:
		return strings.Compare(toText(a), toText(b)), true
	}
	return 0, false
}

func cmpOrdered[T int64 | float64 | time.Duration](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
