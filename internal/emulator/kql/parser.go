package kql

import (
	"strconv"
	"strings"
	"time"
)

// Query is a parsed KQL query: a table and a pipeline of operators.
type Query struct {
	src   string
	Table string
	ops   []operator
}

// expression nodes

type expr interface{ pos() int }

type (
	litExpr struct {
		p   int
		typ Type
		val any
	}
	colExpr struct {
		p    int
		name string
	}
	starExpr struct{ p int } // the * in arg_max(x, *)
	callExpr struct {
		p    int
		name string
		args []expr
	}
	binExpr struct {
		p     int
		op    string // or and == != < <= > >= =~ !~ + - * / % and string operators
		left  expr
		right expr
	}
	inExpr struct {
		p       int
		negate  bool
		ci      bool // in~
		left    expr
		list    []expr
		between bool // between (a .. b): list holds a and b
	}
	unaryExpr struct {
		p  int
		op string // - or not
		x  expr
	}
	memberExpr struct {
		p     int
		x     expr
		name  string // property name, or "" when index is set
		index expr
	}
)

func (e *litExpr) pos() int    { return e.p }
func (e *colExpr) pos() int    { return e.p }
func (e *starExpr) pos() int   { return e.p }
func (e *callExpr) pos() int   { return e.p }
func (e *binExpr) pos() int    { return e.p }
func (e *inExpr) pos() int     { return e.p }
func (e *unaryExpr) pos() int  { return e.p }
func (e *memberExpr) pos() int { return e.p }

// operators

type namedExpr struct {
	name string // "" when not given
	x    expr
}

type sortKey struct {
	x          expr
	desc       bool
	nullsFirst bool
}

type operator interface{ opName() string }

type (
	whereOp     struct{ pred expr }
	projectOp   struct{ items []namedExpr }
	extendOp    struct{ items []namedExpr }
	awayOp      struct{ patterns []string }
	keepOp      struct{ patterns []string }
	renameOp    struct{ pairs [][2]string } // new, old
	summarizeOp struct {
		aggs []namedExpr
		by   []namedExpr
	}
	sortOp struct{ keys []sortKey }
	takeOp struct{ n int64 }
	topOp  struct {
		n   int64
		key sortKey
	}
	countOp    struct{}
	distinctOp struct{ items []namedExpr }
)

func (*whereOp) opName() string     { return "where" }
func (*projectOp) opName() string   { return "project" }
func (*extendOp) opName() string    { return "extend" }
func (*awayOp) opName() string      { return "project-away" }
func (*keepOp) opName() string      { return "project-keep" }
func (*renameOp) opName() string    { return "project-rename" }
func (*summarizeOp) opName() string { return "summarize" }
func (*sortOp) opName() string      { return "order" }
func (*takeOp) opName() string      { return "take" }
func (*topOp) opName() string       { return "top" }
func (*countOp) opName() string     { return "count" }
func (*distinctOp) opName() string  { return "distinct" }

type parser struct {
	src  string
	toks []token
	i    int
}

// Parse parses one KQL query: a table name followed by '|' operators.
// Supported operators: where (filter), project, project-away, project-keep,
// project-rename, extend, summarize, order by / sort by, take / limit, top,
// count, distinct.
func Parse(src string) (*Query, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{src: src, toks: toks}
	q, err := p.query()
	if err != nil {
		return nil, err
	}
	q.src = src
	return q, nil
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func (p *parser) isPunct(s string) bool {
	t := p.peek()
	return t.kind == tPunct && t.text == s
}

func (p *parser) isWord(s string) bool {
	t := p.peek()
	return t.kind == tIdent && t.text == s
}

func (p *parser) acceptPunct(s string) bool {
	if p.isPunct(s) {
		p.i++
		return true
	}
	return false
}

func (p *parser) acceptWord(s string) bool {
	if p.isWord(s) {
		p.i++
		return true
	}
	return false
}

func (p *parser) errAt(t token) *Error {
	if t.kind == tEOF {
		return syntaxErr(p.src, t.pos, "Query could not be parsed at end of query")
	}
	text := t.text
	if t.kind == tString {
		text = strconv.Quote(t.text)
	}
	return syntaxErr(p.src, t.pos, "Query could not be parsed at '%s'", text)
}

func (p *parser) expectPunct(s string) error {
	if !p.acceptPunct(s) {
		return p.errAt(p.peek())
	}
	return nil
}

func (p *parser) expectWord(s string) error {
	if !p.acceptWord(s) {
		return p.errAt(p.peek())
	}
	return nil
}

func (p *parser) ident() (string, error) {
	t := p.peek()
	if t.kind != tIdent {
		return "", p.errAt(t)
	}
	p.i++
	return t.text, nil
}

func (p *parser) query() (*Query, error) {
	for p.acceptPunct(";") {
	}
	if p.isWord("let") {
		return nil, semanticErr("'let' statements are not supported by this emulator")
	}
	name, err := p.ident()
	if err != nil {
		return nil, err
	}
	q := &Query{Table: name}
	for p.acceptPunct("|") {
		op, err := p.operator()
		if err != nil {
			return nil, err
		}
		q.ops = append(q.ops, op)
	}
	for p.acceptPunct(";") {
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, p.errAt(t)
	}
	return q, nil
}

func (p *parser) operator() (operator, error) {
	t := p.peek()
	if t.kind != tIdent {
		return nil, p.errAt(t)
	}
	p.i++
	switch t.text {
	case "where", "filter":
		e, err := p.expr()
		if err != nil {
			return nil, err
		}
		return &whereOp{pred: e}, nil
	case "project":
		items, err := p.namedList()
		if err != nil {
			return nil, err
		}
		return &projectOp{items: items}, nil
	case "extend":
		items, err := p.namedList()
		if err != nil {
			return nil, err
		}
		return &extendOp{items: items}, nil
	case "project-away", "project-keep":
		var pats []string
		for {
			var b strings.Builder
			for p.peek().kind == tIdent || p.isPunct("*") {
				b.WriteString(p.next().text)
			}
			if b.Len() == 0 {
				return nil, p.errAt(p.peek())
			}
			pats = append(pats, b.String())
			if !p.acceptPunct(",") {
				break
			}
		}
		if t.text == "project-away" {
			return &awayOp{patterns: pats}, nil
		}
		return &keepOp{patterns: pats}, nil
	case "project-rename":
		op := &renameOp{}
		for {
			newName, err := p.ident()
			if err != nil {
				return nil, err
			}
			if err := p.expectPunct("="); err != nil {
				return nil, err
			}
			old, err := p.ident()
			if err != nil {
				return nil, err
			}
			op.pairs = append(op.pairs, [2]string{newName, old})
			if !p.acceptPunct(",") {
				break
			}
		}
		return op, nil
	case "summarize":
		op := &summarizeOp{}
		if !p.isWord("by") {
			aggs, err := p.namedList()
			if err != nil {
				return nil, err
			}
			op.aggs = aggs
		}
		if p.acceptWord("by") {
			by, err := p.namedList()
			if err != nil {
				return nil, err
			}
			op.by = by
		}
		if len(op.aggs) == 0 && len(op.by) == 0 {
			return nil, p.errAt(p.peek())
		}
		return op, nil
	case "order", "sort":
		if err := p.expectWord("by"); err != nil {
			return nil, err
		}
		op := &sortOp{}
		for {
			k, err := p.sortKey()
			if err != nil {
				return nil, err
			}
			op.keys = append(op.keys, k)
			if !p.acceptPunct(",") {
				break
			}
		}
		return op, nil
	case "take", "limit":
		n, err := p.count()
		if err != nil {
			return nil, err
		}
		return &takeOp{n: n}, nil
	case "top":
		n, err := p.count()
		if err != nil {
			return nil, err
		}
		if err := p.expectWord("by"); err != nil {
			return nil, err
		}
		k, err := p.sortKey()
		if err != nil {
			return nil, err
		}
		return &topOp{n: n, key: k}, nil
	case "count":
		return &countOp{}, nil
	case "distinct":
		items, err := p.namedList()
		if err != nil {
			return nil, err
		}
		return &distinctOp{items: items}, nil
	case "join", "union", "lookup", "mv-expand", "parse", "parse-where", "make-series", "render",
		"evaluate", "search", "project-reorder", "sample", "serialize", "as", "invoke", "getschema", "find", "fork", "facet":
		return nil, semanticErr("the '%s' operator is not supported by this emulator", t.text)
	}
	return nil, p.errAt(t)
}

func (p *parser) count() (int64, error) {
	t := p.peek()
	if t.kind != tNumber {
		return 0, p.errAt(t)
	}
	p.i++
	n, err := strconv.ParseInt(t.text, 10, 64)
	if err != nil || n < 0 {
		return 0, p.errAt(t)
	}
	return n, nil
}

func (p *parser) sortKey() (sortKey, error) {
	e, err := p.expr()
	if err != nil {
		return sortKey{}, err
	}
	k := sortKey{x: e, desc: true} // KQL sorts descending unless told otherwise
	switch {
	case p.acceptWord("asc"):
		k.desc = false
	case p.acceptWord("desc"):
	}
	k.nullsFirst = !k.desc
	if p.acceptWord("nulls") {
		switch {
		case p.acceptWord("first"):
			k.nullsFirst = true
		case p.acceptWord("last"):
			k.nullsFirst = false
		default:
			return sortKey{}, p.errAt(p.peek())
		}
	}
	return k, nil
}

// namedList parses "[Name =] expr, ...".
func (p *parser) namedList() ([]namedExpr, error) {
	var items []namedExpr
	for {
		var it namedExpr
		if t := p.peek(); t.kind == tIdent && p.toks[p.i+1].kind == tPunct && p.toks[p.i+1].text == "=" {
			it.name = t.text
			p.i += 2
		}
		e, err := p.expr()
		if err != nil {
			return nil, err
		}
		it.x = e
		items = append(items, it)
		if !p.acceptPunct(",") {
			return items, nil
		}
	}
}

// Expressions, lowest precedence first: or, and, comparison and string
// operators, additive, multiplicative, unary, postfix (.member, [index]).

func (p *parser) expr() (expr, error) { return p.orExpr() }

func (p *parser) orExpr() (expr, error) {
	l, err := p.andExpr()
	if err != nil {
		return nil, err
	}
	for p.isWord("or") {
		t := p.next()
		r, err := p.andExpr()
		if err != nil {
			return nil, err
		}
		l = &binExpr{p: t.pos, op: "or", left: l, right: r}
	}
	return l, nil
}

func (p *parser) andExpr() (expr, error) {
	l, err := p.cmpExpr()
	if err != nil {
		return nil, err
	}
	for p.isWord("and") {
		t := p.next()
		r, err := p.cmpExpr()
		if err != nil {
			return nil, err
		}
		l = &binExpr{p: t.pos, op: "and", left: l, right: r}
	}
	return l, nil
}

// stringOps are the word operators between two string expressions.
var stringOps = map[string]bool{
	"contains": true, "contains_cs": true, "has": true, "has_cs": true,
	"startswith": true, "startswith_cs": true, "endswith": true, "endswith_cs": true,
	"hasprefix": true, "hassuffix": true, "matches": true, "has_any": true, "has_all": true,
}

func (p *parser) cmpExpr() (expr, error) {
	l, err := p.addExpr()
	if err != nil {
		return nil, err
	}
	t := p.peek()
	switch {
	case t.kind == tPunct && (t.text == "==" || t.text == "!=" || t.text == "<>" || t.text == "<" || t.text == "<=" ||
		t.text == ">" || t.text == ">=" || t.text == "=~" || t.text == "!~"):
		p.i++
		r, err := p.addExpr()
		if err != nil {
			return nil, err
		}
		op := t.text
		if op == "<>" {
			op = "!="
		}
		return &binExpr{p: t.pos, op: op, left: l, right: r}, nil
	case t.kind == tPunct && t.text == "!" && p.toks[p.i+1].kind == tIdent:
		word := p.toks[p.i+1].text
		if word == "in" || word == "between" {
			p.i += 2
			return p.inRest(t.pos, l, true, word == "between")
		}
		if stringOps[word] && word != "matches" && word != "has_any" && word != "has_all" {
			p.i += 2
			r, err := p.addExpr()
			if err != nil {
				return nil, err
			}
			return &binExpr{p: t.pos, op: "!" + word, left: l, right: r}, nil
		}
		return nil, p.errAt(t)
	case t.kind == tIdent && (t.text == "in" || t.text == "between"):
		p.i++
		return p.inRest(t.pos, l, false, t.text == "between")
	case t.kind == tIdent && stringOps[t.text]:
		p.i++
		if t.text == "matches" {
			if err := p.expectWord("regex"); err != nil {
				return nil, err
			}
		}
		if t.text == "has_any" || t.text == "has_all" {
			list, err := p.parenList()
			if err != nil {
				return nil, err
			}
			return &callExpr{p: t.pos, name: t.text, args: append([]expr{l}, list...)}, nil
		}
		r, err := p.addExpr()
		if err != nil {
			return nil, err
		}
		return &binExpr{p: t.pos, op: t.text, left: l, right: r}, nil
	}
	return l, nil
}

// inRest parses the list after in / !in / in~ / between.
func (p *parser) inRest(pos int, left expr, negate, between bool) (expr, error) {
	e := &inExpr{p: pos, negate: negate, left: left, between: between}
	if !between && p.acceptPunct("~") {
		e.ci = true
	}
	if between {
		if err := p.expectPunct("("); err != nil {
			return nil, err
		}
		lo, err := p.addExpr()
		if err != nil {
			return nil, err
		}
		if err := p.expectPunct(".."); err != nil {
			return nil, err
		}
		hi, err := p.addExpr()
		if err != nil {
			return nil, err
		}
		if err := p.expectPunct(")"); err != nil {
			return nil, err
		}
		e.list = []expr{lo, hi}
		return e, nil
	}
	list, err := p.parenList()
	if err != nil {
		return nil, err
	}
	e.list = list
	return e, nil
}

func (p *parser) parenList() ([]expr, error) {
	if err := p.expectPunct("("); err != nil {
		return nil, err
	}
	var list []expr
	if p.acceptPunct(")") {
		return list, nil
	}
	for {
		x, err := p.expr()
		if err != nil {
			return nil, err
		}
		list = append(list, x)
		if p.acceptPunct(")") {
			return list, nil
		}
		if err := p.expectPunct(","); err != nil {
			return nil, err
		}
	}
}

func (p *parser) addExpr() (expr, error) {
	l, err := p.mulExpr()
	if err != nil {
		return nil, err
	}
	for p.isPunct("+") || p.isPunct("-") {
		t := p.next()
		r, err := p.mulExpr()
		if err != nil {
			return nil, err
		}
		l = &binExpr{p: t.pos, op: t.text, left: l, right: r}
	}
	return l, nil
}

func (p *parser) mulExpr() (expr, error) {
	l, err := p.unary()
	if err != nil {
		return nil, err
	}
	for p.isPunct("*") || p.isPunct("/") || p.isPunct("%") {
		t := p.next()
		r, err := p.unary()
		if err != nil {
			return nil, err
		}
		l = &binExpr{p: t.pos, op: t.text, left: l, right: r}
	}
	return l, nil
}

func (p *parser) unary() (expr, error) {
	if p.isPunct("-") || p.isPunct("+") {
		t := p.next()
		x, err := p.unary()
		if err != nil {
			return nil, err
		}
		if t.text == "+" {
			return x, nil
		}
		return &unaryExpr{p: t.pos, op: "-", x: x}, nil
	}
	return p.postfix()
}

func (p *parser) postfix() (expr, error) {
	x, err := p.primary()
	if err != nil {
		return nil, err
	}
	for {
		switch {
		case p.isPunct("."):
			t := p.next()
			name := p.peek()
			if name.kind != tIdent {
				return nil, p.errAt(name)
			}
			p.i++
			x = &memberExpr{p: t.pos, x: x, name: name.text}
		case p.isPunct("["):
			t := p.next()
			idx, err := p.expr()
			if err != nil {
				return nil, err
			}
			if err := p.expectPunct("]"); err != nil {
				return nil, err
			}
			x = &memberExpr{p: t.pos, x: x, index: idx}
		default:
			return x, nil
		}
	}
}

func (p *parser) primary() (expr, error) {
	t := p.peek()
	switch t.kind {
	case tString:
		p.i++
		return &litExpr{p: t.pos, typ: TypeString, val: t.text}, nil
	case tNumber:
		p.i++
		if strings.ContainsAny(t.text, ".eE") {
			f, err := strconv.ParseFloat(t.text, 64)
			if err != nil {
				return nil, p.errAt(t)
			}
			return &litExpr{p: t.pos, typ: TypeReal, val: f}, nil
		}
		n, err := strconv.ParseInt(t.text, 10, 64)
		if err != nil {
			return nil, p.errAt(t)
		}
		return &litExpr{p: t.pos, typ: TypeLong, val: n}, nil
	case tTimespan:
		p.i++
		return &litExpr{p: t.pos, typ: TypeTimespan, val: time.Duration(t.dur) * Tick}, nil
	case tRaw:
		p.i++
		return p.rawLiteral(t)
	case tPunct:
		if t.text == "(" {
			p.i++
			x, err := p.expr()
			if err != nil {
				return nil, err
			}
			if err := p.expectPunct(")"); err != nil {
				return nil, err
			}
			return x, nil
		}
		if t.text == "*" {
			p.i++
			return &starExpr{p: t.pos}, nil
		}
		if t.text == "[" && p.toks[p.i+1].kind == tString && p.toks[p.i+2].kind == tPunct && p.toks[p.i+2].text == "]" {
			// ['column name']: a quoted column name.
			name := p.toks[p.i+1].text
			p.i += 3
			return &colExpr{p: t.pos, name: name}, nil
		}
	case tIdent:
		p.i++
		switch t.text {
		case "true", "false":
			return &litExpr{p: t.pos, typ: TypeBool, val: t.text == "true"}, nil
		}
		if p.isPunct("(") {
			args, err := p.parenList()
			if err != nil {
				return nil, err
			}
			return &callExpr{p: t.pos, name: t.text, args: args}, nil
		}
		return &colExpr{p: t.pos, name: t.text}, nil
	}
	return nil, p.errAt(t)
}

func (p *parser) rawLiteral(t token) (expr, error) {
	body := t.text
	unquote := func() string {
		if len(body) >= 2 && (body[0] == '\'' || body[0] == '"') && body[len(body)-1] == body[0] {
			if s, _, err := lexString(body, 0, false); err == nil {
				return s
			}
		}
		return body
	}
	switch t.fn {
	case "datetime":
		if body == "" || body == "null" {
			return &litExpr{p: t.pos, typ: TypeDatetime}, nil
		}
		v, err := ParseDatetime(unquote())
		if err != nil {
			return nil, syntaxErr(p.src, t.pos, "invalid datetime literal '%s'", body)
		}
		return &litExpr{p: t.pos, typ: TypeDatetime, val: v}, nil
	case "timespan":
		if body == "" || body == "null" {
			return &litExpr{p: t.pos, typ: TypeTimespan}, nil
		}
		v, err := parseTimespanText(unquote())
		if err != nil {
			return nil, syntaxErr(p.src, t.pos, "invalid timespan literal '%s'", body)
		}
		return &litExpr{p: t.pos, typ: TypeTimespan, val: v}, nil
	case "guid":
		return &litExpr{p: t.pos, typ: TypeGUID, val: strings.ToLower(unquote())}, nil
	case "dynamic":
		if body == "" || body == "null" {
			return &litExpr{p: t.pos, typ: TypeDynamic}, nil
		}
		v, err := parseDynamicLiteral(body)
		if err != nil {
			return nil, syntaxErr(p.src, t.pos, "invalid dynamic literal '%s'", body)
		}
		return &litExpr{p: t.pos, typ: TypeDynamic, val: v}, nil
	}
	return nil, p.errAt(t)
}
