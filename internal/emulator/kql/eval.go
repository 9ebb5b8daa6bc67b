package kql

import (
	"fmt"
	"math"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Column is one column of a table: its name and Kusto type.
type Column struct {
	Name string `json:"name"`
	Type Type   `json:"type"`
}

// Table is a tabular value: the input tables of a query and its result.
// Rows hold values as documented on the Type constants.
type Table struct {
	Name    string
	Columns []Column
	Rows    [][]any
}

// Options are the inputs of a query run.
type Options struct {
	// Now is the query's now(); ago(x) is Now - x. Kusto fixes now() once
	// per query, and so does the evaluator.
	Now time.Time
	// Tables resolves a table name (case-sensitive, as in Kusto). ok=false
	// makes the query fail with Kusto's "failed to resolve table" error.
	Tables func(name string) (t *Table, ok bool)
}

// Run parses and runs one query.
func Run(src string, opts Options) (*Table, error) {
	q, err := Parse(src)
	if err != nil {
		return nil, err
	}
	return q.Run(opts)
}

// Run evaluates the query. The result is named PrimaryResult, as the Log
// Analytics query API names the result of a query.
func (q *Query) Run(opts Options) (*Table, error) {
	if opts.Tables == nil {
		return nil, semanticErr("Failed to resolve table or column expression named '%s'", q.Table)
	}
	in, ok := opts.Tables(q.Table)
	if !ok || in == nil {
		return nil, semanticErr("Failed to resolve table or column expression named '%s'", q.Table)
	}
	env := &env{now: opts.Now.UTC().Truncate(Tick)}
	cur := &Table{Columns: append([]Column(nil), in.Columns...), Rows: in.Rows}
	for _, op := range q.ops {
		next, err := env.apply(op, cur)
		if err != nil {
			var ke *Error
			if e, ok := err.(*Error); ok {
				ke = e
			} else {
				ke = semanticErr("%v", err)
			}
			if ke.Semantic && !strings.HasPrefix(ke.Msg, "'") {
				ke.Msg = fmt.Sprintf("'%s' operator: %s", op.opName(), ke.Msg)
			}
			return nil, ke
		}
		cur = next
	}
	out := &Table{Name: "PrimaryResult", Columns: cur.Columns, Rows: make([][]any, len(cur.Rows))}
	for i, r := range cur.Rows {
		row := make([]any, len(r))
		for j, v := range r {
			if v == nil && isStringy(cur.Columns[j].Type) {
				v = ""
			}
			row[j] = v
		}
		out.Rows[i] = row
	}
	return out, nil
}

type env struct {
	now time.Time
}

// compiled is a type-checked expression ready to run on a row.
type compiled struct {
	typ  Type
	eval func(row []any) any
}

func constant(t Type, v any) compiled {
	return compiled{typ: t, eval: func([]any) any { return v }}
}

func colIndex(cols []Column, name string) int {
	for i, c := range cols {
		if c.Name == name {
			return i
		}
	}
	return -1
}

func (en *env) apply(op operator, in *Table) (*Table, error) {
	switch o := op.(type) {
	case *whereOp:
		pred, err := en.compile(o.pred, in.Columns)
		if err != nil {
			return nil, err
		}
		if pred.typ != TypeBool && pred.typ != TypeDynamic {
			return nil, semanticErr("the predicate must be of type bool, not %s", pred.typ)
		}
		out := &Table{Columns: in.Columns}
		for _, r := range in.Rows {
			if b, ok := pred.eval(r).(bool); ok && b {
				out.Rows = append(out.Rows, r)
			}
		}
		return out, nil

	case *projectOp:
		cols, fns, err := en.compileItems(o.items, in.Columns)
		if err != nil {
			return nil, err
		}
		out := &Table{Columns: cols}
		for _, r := range in.Rows {
			nr := make([]any, len(fns))
			for i, f := range fns {
				nr[i] = f.eval(r)
			}
			out.Rows = append(out.Rows, nr)
		}
		return out, nil

	case *extendOp:
		cols := append([]Column(nil), in.Columns...)
		type slot struct {
			idx int
			fn  compiled
		}
		var slots []slot
		// Each item sees the columns added by the items before it.
		for n, it := range o.items {
			c, err := en.compile(it.x, cols)
			if err != nil {
				return nil, err
			}
			name := it.name
			if name == "" {
				name = defaultName(it.x, fmt.Sprintf("Column%d", n+1))
			}
			idx := colIndex(cols, name)
			if idx < 0 {
				cols = append(cols, Column{Name: name, Type: c.typ})
				idx = len(cols) - 1
			} else {
				cols[idx].Type = c.typ
			}
			slots = append(slots, slot{idx: idx, fn: c})
		}
		out := &Table{Columns: cols}
		for _, r := range in.Rows {
			nr := make([]any, len(cols))
			copy(nr, r)
			for _, s := range slots {
				nr[s.idx] = s.fn.eval(nr)
			}
			out.Rows = append(out.Rows, nr)
		}
		return out, nil

	case *awayOp, *keepOp:
		var pats []string
		keep := false
		if a, ok := o.(*awayOp); ok {
			pats = a.patterns
		} else {
			pats = o.(*keepOp).patterns
			keep = true
		}
		matched := make([]bool, len(in.Columns))
		for _, p := range pats {
			any := false
			for i, c := range in.Columns {
				if ok, _ := path.Match(p, c.Name); ok {
					matched[i] = true
					any = true
				}
			}
			if !any && !strings.Contains(p, "*") {
				return nil, semanticErr("Failed to resolve column or scalar expression named '%s'", p)
			}
		}
		var idx []int
		for i := range in.Columns {
			if matched[i] == keep {
				idx = append(idx, i)
			}
		}
		return pick(in, idx), nil

	case *renameOp:
		cols := append([]Column(nil), in.Columns...)
		for _, pr := range o.pairs {
			i := colIndex(cols, pr[1])
			if i < 0 {
				return nil, semanticErr("Failed to resolve column or scalar expression named '%s'", pr[1])
			}
			cols[i].Name = pr[0]
		}
		return &Table{Columns: cols, Rows: in.Rows}, nil

	case *summarizeOp:
		return en.summarize(o, in)

	case *sortOp:
		return en.sort(o.keys, in)

	case *takeOp:
		n := int(min(o.n, int64(len(in.Rows))))
		return &Table{Columns: in.Columns, Rows: in.Rows[:n]}, nil

	case *topOp:
		sorted, err := en.sort([]sortKey{o.key}, in)
		if err != nil {
			return nil, err
		}
		n := int(min(o.n, int64(len(sorted.Rows))))
		sorted.Rows = sorted.Rows[:n]
		return sorted, nil

	case *countOp:
		return &Table{Columns: []Column{{Name: "Count", Type: TypeLong}}, Rows: [][]any{{int64(len(in.Rows))}}}, nil

	case *distinctOp:
		items := o.items
		if len(items) == 1 {
			if _, ok := items[0].x.(*starExpr); ok {
				items = nil
				for _, c := range in.Columns {
					items = append(items, namedExpr{x: &colExpr{name: c.Name}})
				}
			}
		}
		return en.summarize(&summarizeOp{by: items}, in)
	}
	return nil, semanticErr("unsupported operator")
}

func pick(in *Table, idx []int) *Table {
	out := &Table{}
	for _, i := range idx {
		out.Columns = append(out.Columns, in.Columns[i])
	}
	for _, r := range in.Rows {
		nr := make([]any, len(idx))
		for j, i := range idx {
			nr[j] = r[i]
		}
		out.Rows = append(out.Rows, nr)
	}
	return out
}

// defaultName is the column name Kusto gives an unnamed expression.
func defaultName(x expr, fallback string) string {
	switch e := x.(type) {
	case *colExpr:
		return e.name
	case *memberExpr:
		if e.name != "" {
			return defaultName(e.x, fallback) + "_" + e.name
		}
	case *callExpr:
		if (e.name == "bin" || e.name == "floor") && len(e.args) > 0 {
			if c, ok := e.args[0].(*colExpr); ok {
				return c.name
			}
		}
	}
	return fallback
}

func uniqueName(cols []Column, name string) string {
	if colIndex(cols, name) < 0 {
		return name
	}
	for i := 1; ; i++ {
		n := name + strconv.Itoa(i)
		if colIndex(cols, n) < 0 {
			return n
		}
	}
}

func (en *env) compileItems(items []namedExpr, in []Column) ([]Column, []compiled, error) {
	var cols []Column
	var fns []compiled
	for n, it := range items {
		c, err := en.compile(it.x, in)
		if err != nil {
			return nil, nil, err
		}
		name := it.name
		if name == "" {
			name = defaultName(it.x, fmt.Sprintf("Column%d", n+1))
		}
		cols = append(cols, Column{Name: uniqueName(cols, name), Type: c.typ})
		fns = append(fns, c)
	}
	return cols, fns, nil
}

func (en *env) sort(keys []sortKey, in *Table) (*Table, error) {
	type ck struct {
		c          compiled
		desc       bool
		nullsFirst bool
	}
	var cks []ck
	for _, k := range keys {
		c, err := en.compile(k.x, in.Columns)
		if err != nil {
			return nil, err
		}
		cks = append(cks, ck{c: c, desc: k.desc, nullsFirst: k.nullsFirst})
	}
	rows := append([][]any(nil), in.Rows...)
	vals := make([][]any, len(rows))
	for i, r := range rows {
		v := make([]any, len(cks))
		for j, k := range cks {
			v[j] = k.c.eval(r)
		}
		vals[i] = v
	}
	idx := make([]int, len(rows))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		va, vb := vals[idx[a]], vals[idx[b]]
		for j, k := range cks {
			x, y := va[j], vb[j]
			if x == nil || y == nil {
				if x == nil && y == nil {
					continue
				}
				return (x == nil) == k.nullsFirst
			}
			c, ok := compareValues(x, y)
			if !ok {
				c = strings.Compare(toText(x), toText(y))
			}
			if c == 0 {
				continue
			}
			if k.desc {
				return c > 0
			}
			return c < 0
		}
		return false
	})
	out := &Table{Columns: in.Columns, Rows: make([][]any, len(rows))}
	for i, j := range idx {
		out.Rows[i] = rows[j]
	}
	return out, nil
}

// ---- summarize ----

type aggState interface {
	add(row []any)
	result() []any
}

type aggSpec struct {
	cols  []Column
	state func() aggState
}

func (en *env) summarize(o *summarizeOp, in *Table) (*Table, error) {
	var byCols []Column
	var byFns []compiled
	for n, it := range o.by {
		c, err := en.compile(it.x, in.Columns)
		if err != nil {
			return nil, err
		}
		name := it.name
		if name == "" {
			name = defaultName(it.x, fmt.Sprintf("Column%d", n+1))
		}
		byCols = append(byCols, Column{Name: uniqueName(byCols, name), Type: c.typ})
		byFns = append(byFns, c)
	}
	outCols := append([]Column(nil), byCols...)
	var specs []aggSpec
	for _, it := range o.aggs {
		spec, err := en.aggregate(it, in.Columns, byCols, outCols)
		if err != nil {
			return nil, err
		}
		for i := range spec.cols {
			spec.cols[i].Name = uniqueName(outCols, spec.cols[i].Name)
			outCols = append(outCols, spec.cols[i])
		}
		specs = append(specs, spec)
	}

	type group struct {
		keys   []any
		states []aggState
	}
	var order []*group
	groups := map[string]*group{}
	for _, r := range in.Rows {
		keys := make([]any, len(byFns))
		var kb strings.Builder
		for i, f := range byFns {
			keys[i] = f.eval(r)
			kb.WriteString(groupKey(keys[i]))
			kb.WriteByte(0)
		}
		g := groups[kb.String()]
		if g == nil {
			g = &group{keys: keys}
			for _, s := range specs {
				g.states = append(g.states, s.state())
			}
			groups[kb.String()] = g
			order = append(order, g)
		}
		for _, s := range g.states {
			s.add(r)
		}
	}
	if len(byFns) == 0 && len(order) == 0 {
		// Kusto: summarize without "by" over no rows yields one row.
		g := &group{}
		for _, s := range specs {
			g.states = append(g.states, s.state())
		}
		order = append(order, g)
	}
	out := &Table{Columns: outCols}
	for _, g := range order {
		row := append([]any(nil), g.keys...)
		for _, s := range g.states {
			row = append(row, s.result()...)
		}
		out.Rows = append(out.Rows, row)
	}
	return out, nil
}

// groupKey encodes a value for grouping and distinct counting.
func groupKey(v any) string {
	switch x := v.(type) {
	case nil:
		return "n"
	case string:
		return "s" + x
	case int64:
		return "i" + strconv.FormatInt(x, 10)
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1e15 {
			return "i" + strconv.FormatInt(int64(x), 10)
		}
		return "f" + strconv.FormatFloat(x, 'g', -1, 64)
	case time.Time:
		return "t" + strconv.FormatInt(x.UnixNano(), 10)
	case time.Duration:
		return "d" + strconv.FormatInt(int64(x), 10)
	case bool:
		return "b" + strconv.FormatBool(x)
	}
	return "j" + toText(v)
}

func (en *env) aggregate(it namedExpr, in, byCols, soFar []Column) (aggSpec, error) {
	call, ok := it.x.(*callExpr)
	if !ok {
		return aggSpec{}, semanticErr("summarize expects aggregation functions such as count() or arg_max()")
	}
	argName := func(i int, prefix string) string {
		if it.name != "" {
			return it.name
		}
		if i < len(call.args) {
			if n := defaultName(call.args[i], ""); n != "" {
				return prefix + n
			}
		}
		return prefix
	}
	arg := func(i int) (compiled, error) {
		if i >= len(call.args) {
			return compiled{}, semanticErr("function '%s' expects more arguments", call.name)
		}
		return en.compile(call.args[i], in)
	}
	switch call.name {
	case "count":
		name := it.name
		if name == "" {
			name = "count_"
		}
		return aggSpec{cols: []Column{{Name: name, Type: TypeLong}}, state: func() aggState { return &countAgg{} }}, nil
	case "countif":
		p, err := arg(0)
		if err != nil {
			return aggSpec{}, err
		}
		name := it.name
		if name == "" {
			name = "countif_"
		}
		return aggSpec{cols: []Column{{Name: name, Type: TypeLong}}, state: func() aggState { return &countAgg{pred: &p} }}, nil
	case "dcount":
		x, err := arg(0)
		if err != nil {
			return aggSpec{}, err
		}
		return aggSpec{cols: []Column{{Name: argName(0, "dcount_"), Type: TypeLong}},
			state: func() aggState { return &dcountAgg{x: x, seen: map[string]bool{}} }}, nil
	case "sum", "avg", "min", "max":
		x, err := arg(0)
		if err != nil {
			return aggSpec{}, err
		}
		t := x.typ
		if call.name == "avg" {
			t = TypeReal
		}
		if call.name == "sum" && t == TypeInt {
			t = TypeLong
		}
		return aggSpec{cols: []Column{{Name: argName(0, call.name+"_"), Type: t}},
			state: func() aggState { return &numAgg{kind: call.name, x: x} }}, nil
	case "make_set", "make_list":
		x, err := arg(0)
		if err != nil {
			return aggSpec{}, err
		}
		prefix := "set_"
		if call.name == "make_list" {
			prefix = "list_"
		}
		return aggSpec{cols: []Column{{Name: argName(0, prefix), Type: TypeDynamic}},
			state: func() aggState { return &listAgg{x: x, set: call.name == "make_set", seen: map[string]bool{}} }}, nil
	case "any", "take_any":
		x, err := arg(0)
		if err != nil {
			return aggSpec{}, err
		}
		return aggSpec{cols: []Column{{Name: argName(0, "any_"), Type: x.typ}},
			state: func() aggState { return &anyAgg{x: x} }}, nil
	case "arg_max", "arg_min":
		x, err := arg(0)
		if err != nil {
			return aggSpec{}, err
		}
		if len(call.args) < 2 {
			return aggSpec{}, semanticErr("function '%s' expects at least two arguments", call.name)
		}
		xname := defaultName(call.args[0], "")
		if xname == "" {
			xname = strings.TrimPrefix(call.name, "arg_") + "_"
		}
		cols := []Column{{Name: xname, Type: x.typ}}
		if it.name != "" {
			cols[0].Name = it.name
		}
		var fns []compiled
		taken := map[string]bool{xname: true}
		for _, c := range byCols {
			taken[c.Name] = true
		}
		for _, a := range call.args[1:] {
			if _, ok := a.(*starExpr); ok {
				for i, c := range in {
					if taken[c.Name] {
						continue
					}
					taken[c.Name] = true
					i := i
					cols = append(cols, c)
					fns = append(fns, compiled{typ: c.Type, eval: func(r []any) any { return r[i] }})
				}
				continue
			}
			c, err := en.compile(a, in)
			if err != nil {
				return aggSpec{}, err
			}
			name := defaultName(a, fmt.Sprintf("Column%d", len(cols)))
			cols = append(cols, Column{Name: name, Type: c.typ})
			fns = append(fns, c)
		}
		wantMax := call.name == "arg_max"
		return aggSpec{cols: cols, state: func() aggState { return &argAgg{x: x, fns: fns, max: wantMax} }}, nil
	}
	return aggSpec{}, semanticErr("'%s' is not an aggregation function supported by this emulator", call.name)
}

type countAgg struct {
	pred *compiled
	n    int64
}

func (a *countAgg) add(r []any) {
	if a.pred != nil {
		if b, ok := a.pred.eval(r).(bool); !ok || !b {
			return
		}
	}
	a.n++
}
func (a *countAgg) result() []any { return []any{a.n} }

type dcountAgg struct {
	x    compiled
	seen map[string]bool
}

func (a *dcountAgg) add(r []any) {
	if v := a.x.eval(r); v != nil {
		a.seen[groupKey(v)] = true
	}
}
func (a *dcountAgg) result() []any { return []any{int64(len(a.seen))} }

type numAgg struct {
	kind string
	x    compiled
	acc  any
	sum  float64
	n    int
}

func (a *numAgg) add(r []any) {
	v := a.x.eval(r)
	if v == nil {
		return
	}
	a.n++
	switch a.kind {
	case "min", "max":
		if a.acc == nil {
			a.acc = v
			return
		}
		c, ok := compareValues(v, a.acc)
		if ok && (a.kind == "min" && c < 0 || a.kind == "max" && c > 0) {
			a.acc = v
		}
	case "sum":
		switch x := v.(type) {
		case int64:
			if a.acc == nil {
				a.acc = int64(0)
			}
			if s, ok := a.acc.(int64); ok {
				a.acc = s + x
			} else {
				a.acc = a.acc.(float64) + float64(x)
			}
		case float64:
			switch s := a.acc.(type) {
			case nil:
				a.acc = x
			case int64:
				a.acc = float64(s) + x
			case float64:
				a.acc = s + x
			}
		case time.Duration:
			if a.acc == nil {
				a.acc = time.Duration(0)
			}
			if s, ok := a.acc.(time.Duration); ok {
				a.acc = s + x
			}
		}
	case "avg":
		switch x := v.(type) {
		case int64:
			a.sum += float64(x)
		case float64:
			a.sum += x
		}
	}
}

func (a *numAgg) result() []any {
	if a.kind == "avg" {
		if a.n == 0 {
			return []any{nil}
		}
		return []any{a.sum / float64(a.n)}
	}
	if a.kind == "sum" && a.x.typ == TypeReal {
		if x, ok := a.acc.(int64); ok {
			return []any{float64(x)}
		}
	}
	return []any{a.acc}
}

type listAgg struct {
	x    compiled
	set  bool
	seen map[string]bool
	list []any
}

func (a *listAgg) add(r []any) {
	v := a.x.eval(r)
	if v == nil {
		return
	}
	if a.set {
		k := groupKey(v)
		if a.seen[k] {
			return
		}
		a.seen[k] = true
	}
	a.list = append(a.list, dynamicOf(v))
}
func (a *listAgg) result() []any {
	if a.list == nil {
		return []any{[]any{}}
	}
	return []any{a.list}
}

type anyAgg struct {
	x   compiled
	v   any
	set bool
}

func (a *anyAgg) add(r []any) {
	if !a.set {
		a.v = a.x.eval(r)
		a.set = a.v != nil
	}
}
func (a *anyAgg) result() []any { return []any{a.v} }

// argAgg keeps the row with the greatest (or least) value. On a tie the
// later row wins: in an append-only log table the later row is the newer.
type argAgg struct {
	x    compiled
	fns  []compiled
	max  bool
	best any
	row  []any
}

func (a *argAgg) add(r []any) {
	v := a.x.eval(r)
	if a.row == nil {
		a.best, a.row = v, r
		return
	}
	if v == nil {
		return
	}
	if a.best == nil {
		a.best, a.row = v, r
		return
	}
	c, ok := compareValues(v, a.best)
	if !ok {
		return
	}
	if a.max && c >= 0 || !a.max && c <= 0 {
		a.best, a.row = v, r
	}
}

func (a *argAgg) result() []any {
	out := []any{a.best}
	for _, f := range a.fns {
		if a.row == nil {
			out = append(out, nil)
			continue
		}
		out = append(out, f.eval(a.row))
	}
	return out
}

// dynamicOf converts a scalar value to its dynamic (JSON) form.
func dynamicOf(v any) any {
	switch x := v.(type) {
	case time.Time:
		return FormatDatetime(x)
	case time.Duration:
		return FormatTimespan(x)
	case int64:
		return float64(x)
	}
	return v
}
