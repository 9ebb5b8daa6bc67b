package kql

import (
	"math"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// aggregationNames may only appear directly under summarize.
var aggregationNames = map[string]bool{
	"count": true, "countif": true, "dcount": true, "sum": true, "avg": true, "min": true, "max": true,
	"arg_max": true, "arg_min": true, "make_set": true, "make_list": true, "any": true, "take_any": true,
}

func (en *env) compileCall(e *callExpr, cols []Column) (compiled, error) {
	if aggregationNames[e.name] {
		return compiled{}, semanticErr("the aggregation function '%s' is only allowed under summarize", e.name)
	}
	args := make([]compiled, len(e.args))
	for i, a := range e.args {
		c, err := en.compile(a, cols)
		if err != nil {
			return compiled{}, err
		}
		args[i] = c
	}
	want := func(lo, hi int) error {
		if len(args) < lo || len(args) > hi {
			if lo == hi {
				return semanticErr("function '%s' expects %d argument(s)", e.name, lo)
			}
			return semanticErr("function '%s' expects %d to %d arguments", e.name, lo, hi)
		}
		return nil
	}
	unary := func(t Type, f func(v any) any) (compiled, error) {
		if err := want(1, 1); err != nil {
			return compiled{}, err
		}
		a := args[0]
		return compiled{typ: t, eval: func(r []any) any { return f(a.eval(r)) }}, nil
	}
	convert := func(t Type) (compiled, error) {
		return unary(t, func(v any) any {
			if v == nil {
				return nil
			}
			if t == TypeDynamic {
				if s, ok := v.(string); ok {
					out, err := ToValue(TypeDynamic, s)
					if err != nil {
						return nil
					}
					return out
				}
				return dynamicOf(v)
			}
			if t == TypeString {
				return toText(v)
			}
			if t == TypeDatetime {
				if tt, ok := v.(time.Time); ok {
					return tt
				}
			}
			if t == TypeLong || t == TypeInt {
				switch x := v.(type) {
				case float64:
					return int64(x)
				case bool:
					if x {
						return int64(1)
					}
					return int64(0)
				case time.Duration:
					return int64(x / Tick)
				}
			}
			out, err := ToValue(t, v)
			if err != nil {
				return nil
			}
			return out
		})
	}

	switch e.name {
	case "now":
		if err := want(0, 1); err != nil {
			return compiled{}, err
		}
		if len(args) == 0 {
			return constant(TypeDatetime, en.now), nil
		}
		off := args[0]
		if off.typ != TypeTimespan {
			return compiled{}, semanticErr("now() expects a timespan offset")
		}
		return compiled{typ: TypeDatetime, eval: func(r []any) any { return arith("+", en.now, off.eval(r)) }}, nil
	case "ago":
		if err := want(1, 1); err != nil {
			return compiled{}, err
		}
		if args[0].typ != TypeTimespan {
			return compiled{}, semanticErr("ago() expects a timespan, got %s", args[0].typ)
		}
		a := args[0]
		return compiled{typ: TypeDatetime, eval: func(r []any) any { return arith("-", en.now, a.eval(r)) }}, nil
	case "tolower":
		return unary(TypeString, func(v any) any { return strings.ToLower(toText(v)) })
	case "toupper":
		return unary(TypeString, func(v any) any { return strings.ToUpper(toText(v)) })
	case "strlen":
		return unary(TypeLong, func(v any) any { return int64(utf8.RuneCountInString(toText(v))) })
	case "isempty":
		return unary(TypeBool, func(v any) any { return v == nil || v == "" })
	case "isnotempty":
		return unary(TypeBool, func(v any) any { return !(v == nil || v == "") })
	case "isnull":
		return unary(TypeBool, func(v any) any { return v == nil })
	case "isnotnull":
		return unary(TypeBool, func(v any) any { return v != nil })
	case "not":
		return unary(TypeBool, func(v any) any {
			b, ok := v.(bool)
			if !ok {
				return nil
			}
			return !b
		})
	case "tostring":
		return convert(TypeString)
	case "toint", "tolong":
		return convert(TypeLong)
	case "todouble", "toreal":
		return convert(TypeReal)
	case "tobool", "toboolean":
		return convert(TypeBool)
	case "todatetime":
		return convert(TypeDatetime)
	case "totimespan":
		return convert(TypeTimespan)
	case "todynamic", "parse_json", "toobject":
		return convert(TypeDynamic)
	case "toguid":
		return convert(TypeGUID)
	case "trim":
		// Only the common form trim(@"\s", s) / trim(" ", s).
		if err := want(2, 2); err != nil {
			return compiled{}, err
		}
		cut, s := args[0], args[1]
		return compiled{typ: TypeString, eval: func(r []any) any {
			pat := toText(cut.eval(r))
			text := toText(s.eval(r))
			if pat == `\s` || pat == " " {
				return strings.TrimSpace(text)
			}
			re, err := regexp.Compile("^(" + pat + ")+|(" + pat + ")+$")
			if err != nil {
				return text
			}
			return re.ReplaceAllString(text, "")
		}}, nil
	case "iff", "iif":
		if err := want(3, 3); err != nil {
			return compiled{}, err
		}
		c, a, b := args[0], args[1], args[2]
		t := a.typ
		if t == TypeDynamic {
			t = b.typ
		}
		return compiled{typ: t, eval: func(r []any) any {
			if ok, _ := c.eval(r).(bool); ok {
				return a.eval(r)
			}
			return b.eval(r)
		}}, nil
	case "coalesce":
		if len(args) == 0 {
			return compiled{}, want(1, 64)
		}
		return compiled{typ: args[0].typ, eval: func(r []any) any {
			for _, a := range args {
				if v := a.eval(r); v != nil && v != "" {
					return v
				}
			}
			return nil
		}}, nil
	case "strcat":
		return compiled{typ: TypeString, eval: func(r []any) any {
			var b strings.Builder
			for _, a := range args {
				b.WriteString(toText(a.eval(r)))
			}
			return b.String()
		}}, nil
	case "strcmp":
		if err := want(2, 2); err != nil {
			return compiled{}, err
		}
		a, b := args[0], args[1]
		return compiled{typ: TypeLong, eval: func(r []any) any {
			return int64(strings.Compare(toText(a.eval(r)), toText(b.eval(r))))
		}}, nil
	case "substring":
		if err := want(2, 3); err != nil {
			return compiled{}, err
		}
		return compiled{typ: TypeString, eval: func(r []any) any {
			s := []rune(toText(args[0].eval(r)))
			start, _ := args[1].eval(r).(int64)
			start = max(start, 0)
			if start > int64(len(s)) {
				return ""
			}
			end := int64(len(s))
			if len(args) == 3 {
				if n, ok := args[2].eval(r).(int64); ok && start+n < end {
					end = max(start+n, start)
				}
			}
			return string(s[start:end])
		}}, nil
	case "replace_string":
		if err := want(3, 3); err != nil {
			return compiled{}, err
		}
		return compiled{typ: TypeString, eval: func(r []any) any {
			return strings.ReplaceAll(toText(args[0].eval(r)), toText(args[1].eval(r)), toText(args[2].eval(r)))
		}}, nil
	case "split":
		if err := want(2, 2); err != nil {
			return compiled{}, err
		}
		return compiled{typ: TypeDynamic, eval: func(r []any) any {
			parts := strings.Split(toText(args[0].eval(r)), toText(args[1].eval(r)))
			out := make([]any, len(parts))
			for i, p := range parts {
				out[i] = p
			}
			return out
		}}, nil
	case "array_length":
		return unary(TypeLong, func(v any) any {
			if a, ok := v.([]any); ok {
				return int64(len(a))
			}
			return nil
		})
	case "extract":
		if err := want(3, 3); err != nil {
			return compiled{}, err
		}
		lit, ok := e.args[0].(*litExpr)
		if !ok || lit.typ != TypeString {
			return compiled{}, semanticErr("extract() expects a constant regular expression")
		}
		re, err := regexp.Compile(lit.val.(string))
		if err != nil {
			return compiled{}, semanticErr("invalid regular expression: %v", err)
		}
		return compiled{typ: TypeString, eval: func(r []any) any {
			g, _ := args[1].eval(r).(int64)
			m := re.FindStringSubmatch(toText(args[2].eval(r)))
			if m == nil || g < 0 || int(g) >= len(m) {
				return ""
			}
			return m[g]
		}}, nil
	case "has_any", "has_all":
		if len(args) < 1 {
			return compiled{}, want(2, 64)
		}
		all := e.name == "has_all"
		return compiled{typ: TypeBool, eval: func(r []any) any {
			s := strings.ToLower(toText(args[0].eval(r)))
			var terms []any
			for _, a := range args[1:] {
				v := a.eval(r)
				if arr, ok := v.([]any); ok {
					terms = append(terms, arr...)
				} else {
					terms = append(terms, v)
				}
			}
			for _, t := range terms {
				hit := hasTerm(s, strings.ToLower(toText(t)), true, true)
				if hit && !all {
					return true
				}
				if !hit && all {
					return false
				}
			}
			return all && len(terms) > 0
		}}, nil
	case "bin", "floor":
		if err := want(2, 2); err != nil {
			return compiled{}, err
		}
		x, size := args[0], args[1]
		return compiled{typ: x.typ, eval: func(r []any) any { return bin(x.eval(r), size.eval(r)) }}, nil
	case "startofday":
		return unary(TypeDatetime, func(v any) any {
			if t, ok := v.(time.Time); ok {
				return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
			}
			return nil
		})
	case "abs":
		return unary(args0Type(args), func(v any) any {
			switch x := v.(type) {
			case int64:
				if x < 0 {
					return -x
				}
				return x
			case float64:
				return math.Abs(x)
			case time.Duration:
				if x < 0 {
					return -x
				}
				return x
			}
			return nil
		})
	}
	return compiled{}, semanticErr("Failed to resolve function '%s' (not supported by this emulator)", e.name)
}

func args0Type(args []compiled) Type {
	if len(args) == 0 {
		return TypeDynamic
	}
	return args[0].typ
}

func bin(v, size any) any {
	switch x := v.(type) {
	case time.Time:
		d, ok := size.(time.Duration)
		if !ok || d <= 0 {
			return nil
		}
		ticks := x.UnixNano() / int64(Tick)
		step := int64(d / Tick)
		q := ticks / step
		if ticks%step < 0 {
			q--
		}
		return time.Unix(0, q*step*int64(Tick)).UTC()
	case time.Duration:
		d, ok := size.(time.Duration)
		if !ok || d <= 0 {
			return nil
		}
		return x - x%d
	case int64:
		switch s := size.(type) {
		case int64:
			if s <= 0 {
				return nil
			}
			q := x / s
			if x%s < 0 {
				q--
			}
			return q * s
		case float64:
			if s <= 0 {
				return nil
			}
			return int64(math.Floor(float64(x)/s) * s)
		}
	case float64:
		var s float64
		switch y := size.(type) {
		case int64:
			s = float64(y)
		case float64:
			s = y
		}
		if s <= 0 {
			return nil
		}
		return math.Floor(x/s) * s
	}
	return nil
}
