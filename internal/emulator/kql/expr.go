package kql

import (
	"encoding/json"
	"math"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// compile type-checks an expression against the columns of its input.
func (en *env) compile(x expr, cols []Column) (compiled, error) {
	switch e := x.(type) {
	case *litExpr:
		return constant(e.typ, e.val), nil
	case *colExpr:
		i := colIndex(cols, e.name)
		if i < 0 {
			return compiled{}, semanticErr("Failed to resolve scalar expression named '%s'", e.name)
		}
		return compiled{typ: cols[i].Type, eval: func(r []any) any { return r[i] }}, nil
	case *starExpr:
		return compiled{}, semanticErr("'*' is only allowed inside arg_max(), arg_min() or distinct")
	case *unaryExpr:
		c, err := en.compile(e.x, cols)
		if err != nil {
			return compiled{}, err
		}
		if !isNumeric(c.typ) && c.typ != TypeTimespan && c.typ != TypeDynamic {
			return compiled{}, semanticErr("unary '-' cannot be applied to a value of type %s", c.typ)
		}
		return compiled{typ: c.typ, eval: func(r []any) any { return negate(c.eval(r)) }}, nil
	case *memberExpr:
		return en.compileMember(e, cols)
	case *binExpr:
		return en.compileBinary(e, cols)
	case *inExpr:
		return en.compileIn(e, cols)
	case *callExpr:
		return en.compileCall(e, cols)
	}
	return compiled{}, semanticErr("unsupported expression")
}

func negate(v any) any {
	switch x := v.(type) {
	case int64:
		return -x
	case float64:
		return -x
	case time.Duration:
		return -x
	}
	return nil
}

func (en *env) compileMember(e *memberExpr, cols []Column) (compiled, error) {
	base, err := en.compile(e.x, cols)
	if err != nil {
		return compiled{}, err
	}
	if base.typ != TypeDynamic {
		return compiled{}, semanticErr("member access requires a dynamic value, got %s", base.typ)
	}
	if e.index == nil {
		name := e.name
		return compiled{typ: TypeDynamic, eval: func(r []any) any { return property(base.eval(r), name) }}, nil
	}
	idx, err := en.compile(e.index, cols)
	if err != nil {
		return compiled{}, err
	}
	return compiled{typ: TypeDynamic, eval: func(r []any) any {
		v := base.eval(r)
		switch k := idx.eval(r).(type) {
		case string:
			return property(v, k)
		case int64:
			if arr, ok := v.([]any); ok {
				if k < 0 {
					k += int64(len(arr))
				}
				if k >= 0 && k < int64(len(arr)) {
					return arr[k]
				}
			}
		}
		return nil
	}}, nil
}

func property(v any, name string) any {
	if m, ok := v.(map[string]any); ok {
		return m[name]
	}
	return nil
}

// comparable reports whether Kusto accepts comparing values of types a and b.
func comparableTypes(a, b Type) bool {
	switch {
	case a == b:
		return true
	case a == TypeDynamic || b == TypeDynamic:
		return true
	case isNumeric(a) && isNumeric(b):
		return true
	case isStringy(a) && isStringy(b):
		return true
	}
	return false
}

// coerce converts a dynamic value to the static type of the other operand
// of a comparison, so that Owner.assignedTo == "x" and
// todatetime(AdditionalData.firstSeen) work as in Kusto.
func coerce(v any, to Type) any {
	if v == nil {
		return nil
	}
	switch to {
	case TypeDatetime:
		if s, ok := v.(string); ok {
			if t, err := ParseDatetime(s); err == nil {
				return t
			}
		}
	case TypeString, TypeGUID:
		if _, ok := v.(string); !ok {
			return toText(v)
		}
	case TypeInt, TypeLong, TypeReal:
		if s, ok := v.(string); ok {
			if f, err := ToValue(TypeReal, s); err == nil {
				return f
			}
		}
	}
	return v
}

func (en *env) compileBinary(e *binExpr, cols []Column) (compiled, error) {
	l, err := en.compile(e.left, cols)
	if err != nil {
		return compiled{}, err
	}
	r, err := en.compile(e.right, cols)
	if err != nil {
		return compiled{}, err
	}
	switch e.op {
	case "and", "or":
		for _, c := range []compiled{l, r} {
			if c.typ != TypeBool && c.typ != TypeDynamic {
				return compiled{}, semanticErr("'%s' expects bool operands, got %s", e.op, c.typ)
			}
		}
		isAnd := e.op == "and"
		return compiled{typ: TypeBool, eval: func(row []any) any {
			a, aok := l.eval(row).(bool)
			if isAnd && aok && !a {
				return false
			}
			if !isAnd && aok && a {
				return true
			}
			b, bok := r.eval(row).(bool)
			if isAnd {
				if bok && !b {
					return false
				}
				if aok && bok {
					return true
				}
				return nil
			}
			if bok && b {
				return true
			}
			if aok && bok {
				return false
			}
			return nil
		}}, nil

	case "==", "!=", "<", "<=", ">", ">=":
		if !comparableTypes(l.typ, r.typ) {
			return compiled{}, semanticErr("Cannot compare values of types %s and %s. Try adding explicit casts", l.typ, r.typ)
		}
		op := e.op
		lt, rt := l.typ, r.typ
		return compiled{typ: TypeBool, eval: func(row []any) any {
			a, b := l.eval(row), r.eval(row)
			if lt == TypeDynamic {
				a = coerce(a, rt)
			}
			if rt == TypeDynamic {
				b = coerce(b, lt)
			}
			if a == nil || b == nil {
				return nil
			}
			c, ok := compareValues(a, b)
			if !ok {
				if op == "!=" {
					return true
				}
				if op == "==" {
					return false
				}
				return nil
			}
			switch op {
			case "==":
				return c == 0
			case "!=":
				return c != 0
			case "<":
				return c < 0
			case "<=":
				return c <= 0
			case ">":
				return c > 0
			}
			return c >= 0
		}}, nil

	case "=~", "!~":
		neg := e.op == "!~"
		return compiled{typ: TypeBool, eval: func(row []any) any {
			a, b := l.eval(row), r.eval(row)
			eq := strings.EqualFold(toText(a), toText(b))
			return eq != neg
		}}, nil

	case "+", "-", "*", "/", "%":
		t, err := arithType(e.op, l.typ, r.typ)
		if err != nil {
			return compiled{}, err
		}
		op := e.op
		return compiled{typ: t, eval: func(row []any) any { return arith(op, l.eval(row), r.eval(row)) }}, nil

	case "matches":
		lit, ok := e.right.(*litExpr)
		if !ok || lit.typ != TypeString {
			return compiled{}, semanticErr("'matches regex' expects a constant string pattern")
		}
		re, err := regexp.Compile(lit.val.(string))
		if err != nil {
			return compiled{}, semanticErr("invalid regular expression: %v", err)
		}
		return compiled{typ: TypeBool, eval: func(row []any) any { return re.MatchString(toText(l.eval(row))) }}, nil
	}

	neg := strings.HasPrefix(e.op, "!")
	name := strings.TrimPrefix(e.op, "!")
	match := stringMatchers[name]
	if match == nil {
		return compiled{}, semanticErr("unknown operator '%s'", e.op)
	}
	return compiled{typ: TypeBool, eval: func(row []any) any {
		return match(toText(l.eval(row)), toText(r.eval(row))) != neg
	}}, nil
}

var stringMatchers = map[string]func(s, t string) bool{
	"contains":      func(s, t string) bool { return strings.Contains(strings.ToLower(s), strings.ToLower(t)) },
	"contains_cs":   strings.Contains,
	"startswith":    func(s, t string) bool { return strings.HasPrefix(strings.ToLower(s), strings.ToLower(t)) },
	"startswith_cs": strings.HasPrefix,
	"endswith":      func(s, t string) bool { return strings.HasSuffix(strings.ToLower(s), strings.ToLower(t)) },
	"endswith_cs":   strings.HasSuffix,
	"has":           func(s, t string) bool { return hasTerm(strings.ToLower(s), strings.ToLower(t), true, true) },
	"has_cs":        func(s, t string) bool { return hasTerm(s, t, true, true) },
	"hasprefix":     func(s, t string) bool { return hasTerm(strings.ToLower(s), strings.ToLower(t), true, false) },
	"hassuffix":     func(s, t string) bool { return hasTerm(strings.ToLower(s), strings.ToLower(t), false, true) },
}

func isAlnum(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

// hasTerm reports whether t occurs in s as a whole term: bounded by
// non-alphanumeric characters or the ends of s (Kusto's has operator).
func hasTerm(s, t string, boundStart, boundEnd bool) bool {
	if t == "" {
		return true
	}
	for i := 0; i <= len(s)-len(t); {
		j := strings.Index(s[i:], t)
		if j < 0 {
			return false
		}
		j += i
		okStart, okEnd := true, true
		if boundStart && j > 0 {
			r, _ := utf8.DecodeLastRuneInString(s[:j])
			first, _ := utf8.DecodeRuneInString(t)
			okStart = !isAlnum(r) || !isAlnum(first)
		}
		if boundEnd && j+len(t) < len(s) {
			r, _ := utf8.DecodeRuneInString(s[j+len(t):])
			last, _ := utf8.DecodeLastRuneInString(t)
			okEnd = !isAlnum(r) || !isAlnum(last)
		}
		if okStart && okEnd {
			return true
		}
		i = j + 1
	}
	return false
}

func arithType(op string, a, b Type) (Type, error) {
	bad := func() (Type, error) {
		return "", semanticErr("operator '%s' cannot be applied to values of types %s and %s", op, a, b)
	}
	switch {
	case a == TypeDynamic || b == TypeDynamic:
		return TypeDynamic, nil
	case isNumeric(a) && isNumeric(b):
		if a == TypeReal || b == TypeReal {
			return TypeReal, nil
		}
		return TypeLong, nil
	case a == TypeDatetime && b == TypeDatetime && op == "-":
		return TypeTimespan, nil
	case a == TypeDatetime && b == TypeTimespan && (op == "+" || op == "-"):
		return TypeDatetime, nil
	case a == TypeTimespan && b == TypeDatetime && op == "+":
		return TypeDatetime, nil
	case a == TypeTimespan && b == TypeTimespan:
		switch op {
		case "+", "-", "%":
			return TypeTimespan, nil
		case "/":
			return TypeReal, nil
		}
	case a == TypeTimespan && isNumeric(b) && (op == "*" || op == "/"):
		return TypeTimespan, nil
	case isNumeric(a) && b == TypeTimespan && op == "*":
		return TypeTimespan, nil
	}
	return bad()
}

func arith(op string, a, b any) any {
	if a == nil || b == nil {
		return nil
	}
	switch x := a.(type) {
	case int64:
		switch y := b.(type) {
		case int64:
			switch op {
			case "+":
				return x + y
			case "-":
				return x - y
			case "*":
				return x * y
			case "/":
				if y == 0 {
					return nil
				}
				return x / y
			case "%":
				if y == 0 {
					return nil
				}
				return x % y
			}
		case float64:
			return arithFloat(op, float64(x), y)
		case time.Duration:
			if op == "*" {
				return time.Duration(x) * y
			}
		}
	case float64:
		switch y := b.(type) {
		case int64:
			return arithFloat(op, x, float64(y))
		case float64:
			return arithFloat(op, x, y)
		case time.Duration:
			if op == "*" {
				return time.Duration(x * float64(y)).Truncate(Tick)
			}
		}
	case time.Time:
		switch y := b.(type) {
		case time.Time:
			if op == "-" {
				return x.Sub(y)
			}
		case time.Duration:
			switch op {
			case "+":
				return x.Add(y)
			case "-":
				return x.Add(-y)
			}
		}
	case time.Duration:
		switch y := b.(type) {
		case time.Duration:
			switch op {
			case "+":
				return x + y
			case "-":
				return x - y
			case "/":
				if y == 0 {
					return nil
				}
				return float64(x) / float64(y)
			case "%":
				if y == 0 {
					return nil
				}
				return x % y
			}
		case time.Time:
			if op == "+" {
				return y.Add(x)
			}
		case int64:
			switch op {
			case "*":
				return x * time.Duration(y)
			case "/":
				if y == 0 {
					return nil
				}
				return (x / time.Duration(y)).Truncate(Tick)
			}
		case float64:
			switch op {
			case "*":
				return time.Duration(float64(x) * y).Truncate(Tick)
			case "/":
				if y == 0 {
					return nil
				}
				return time.Duration(float64(x) / y).Truncate(Tick)
			}
		}
	}
	return nil
}

func arithFloat(op string, x, y float64) any {
	switch op {
	case "+":
		return x + y
	case "-":
		return x - y
	case "*":
		return x * y
	case "/":
		if y == 0 {
			return nil
		}
		return x / y
	case "%":
		if y == 0 {
			return nil
		}
		return math.Mod(x, y)
	}
	return nil
}

func (en *env) compileIn(e *inExpr, cols []Column) (compiled, error) {
	l, err := en.compile(e.left, cols)
	if err != nil {
		return compiled{}, err
	}
	var list []compiled
	for _, x := range e.list {
		c, err := en.compile(x, cols)
		if err != nil {
			return compiled{}, err
		}
		if e.between && !comparableTypes(l.typ, c.typ) && !(l.typ == TypeDatetime && c.typ == TypeTimespan) {
			return compiled{}, semanticErr("Cannot compare values of types %s and %s. Try adding explicit casts", l.typ, c.typ)
		}
		list = append(list, c)
	}
	neg := e.negate
	if e.between {
		lo, hi := list[0], list[1]
		return compiled{typ: TypeBool, eval: func(r []any) any {
			v, a, b := l.eval(r), lo.eval(r), hi.eval(r)
			if d, ok := b.(time.Duration); ok {
				if t, ok := a.(time.Time); ok {
					b = t.Add(d)
				}
			}
			if v == nil || a == nil || b == nil {
				return nil
			}
			c1, ok1 := compareValues(v, a)
			c2, ok2 := compareValues(v, b)
			if !ok1 || !ok2 {
				return nil
			}
			return (c1 >= 0 && c2 <= 0) != neg
		}}, nil
	}
	ci := e.ci
	lt := l.typ
	return compiled{typ: TypeBool, eval: func(r []any) any {
		v := l.eval(r)
		if v == nil {
			return nil
		}
		found := false
		for _, c := range list {
			// A dynamic array in the list (in (dynamic([...]))) stands for its elements.
			items := []any{c.eval(r)}
			if arr, ok := items[0].([]any); ok && c.typ == TypeDynamic {
				items = arr
			}
			for _, it := range items {
				if lt != TypeDynamic && c.typ == TypeDynamic {
					it = coerce(it, lt)
				}
				if it == nil {
					continue
				}
				if ci {
					if strings.EqualFold(toText(v), toText(it)) {
						found = true
					}
				} else if cmp, ok := compareValues(v, it); ok && cmp == 0 {
					found = true
				}
			}
			if found {
				break
			}
		}
		return found != neg
	}}, nil
}

// parseDynamicLiteral reads the body of dynamic(...): JSON, where KQL also
// allows single-quoted strings.
func parseDynamicLiteral(body string) (any, error) {
	var b strings.Builder
	for i := 0; i < len(body); {
		c := body[i]
		if c == '\'' || c == '"' {
			s, n, err := lexString(body, i, false)
			if err != nil {
				return nil, err
			}
			q, _ := json.Marshal(s)
			b.Write(q)
			i = n
			continue
		}
		b.WriteByte(c)
		i++
	}
	var v any
	if err := json.Unmarshal([]byte(b.String()), &v); err != nil {
		return nil, err
	}
	return v, nil
}
