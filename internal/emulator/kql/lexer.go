package kql

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

type tokenKind int

const (
	tEOF tokenKind = iota
	tIdent
	tString
	tNumber   // integer or real literal; text holds the digits
	tTimespan // number with a unit suffix (15m, 1d, 100ms)
	tRaw      // raw text of datetime(...), timespan(...), dynamic(...), guid(...)
	tPunct
)

type token struct {
	kind tokenKind
	text string // identifier, decoded string, number text, punctuation, raw literal body
	fn   string // for tRaw: the literal's function name (datetime, timespan, dynamic, guid)
	pos  int    // byte offset in the query
	dur  int64  // for tTimespan: value in ticks
}

func (t token) String() string {
	switch t.kind {
	case tEOF:
		return "end of query"
	case tString:
		return strconv.Quote(t.text)
	case tRaw:
		return t.fn + "(" + t.text + ")"
	}
	return t.text
}

// Error is a query error, in the words Kusto uses: a syntax error (the text
// cannot be parsed) or a semantic error (it parses but names an unknown
// table, column or function, or mixes types).
type Error struct {
	Semantic bool
	Msg      string
	Line     int // 1-based position of the offending text, when known
	Col      int
}

func (e *Error) Error() string {
	if e.Semantic {
		return "Semantic error: " + e.Msg
	}
	if e.Line > 0 {
		return fmt.Sprintf("Syntax error: %s on line [%d,%d]", e.Msg, e.Line, e.Col)
	}
	return "Syntax error: " + e.Msg
}

func syntaxErr(src string, pos int, format string, args ...any) *Error {
	line, col := 1, 1
	for i, r := range src {
		if i >= pos {
			break
		}
		if r == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return &Error{Msg: fmt.Sprintf(format, args...), Line: line, Col: col}
}

func semanticErr(format string, args ...any) *Error {
	return &Error{Semantic: true, Msg: fmt.Sprintf(format, args...)}
}

// rawLiterals are the functions whose argument Kusto reads as literal text
// rather than as an expression.
var rawLiterals = map[string]bool{"datetime": true, "timespan": true, "time": true, "dynamic": true, "guid": true}

// dashedKeywords are operator names that contain a dash.
var dashedKeywords = []string{"project-away", "project-rename", "project-keep", "project-reorder", "mv-expand", "parse-where"}

func lex(src string) ([]token, error) {
	var toks []token
	i := 0
	for {
		// Skip white space and // comments.
		for i < len(src) {
			c := src[i]
			if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
				i++
				continue
			}
			if c == '/' && i+1 < len(src) && src[i+1] == '/' {
				for i < len(src) && src[i] != '\n' {
					i++
				}
				continue
			}
			break
		}
		if i >= len(src) {
			toks = append(toks, token{kind: tEOF, pos: i})
			return toks, nil
		}
		start := i
		c := src[i]
		switch {
		case c == '\'' || c == '"':
			s, n, err := lexString(src, i, false)
			if err != nil {
				return nil, err
			}
			toks = append(toks, token{kind: tString, text: s, pos: start})
			i = n
		case (c == '@' || c == 'h' || c == 'H') && i+1 < len(src) && (src[i+1] == '\'' || src[i+1] == '"'):
			verbatim := c == '@'
			s, n, err := lexString(src, i+1, verbatim)
			if err != nil {
				return nil, err
			}
			toks = append(toks, token{kind: tString, text: s, pos: start})
			i = n
		case c >= '0' && c <= '9' || c == '.' && i+1 < len(src) && src[i+1] >= '0' && src[i+1] <= '9':
			n := i
			for n < len(src) && (src[n] >= '0' && src[n] <= '9') {
				n++
			}
			if n+1 < len(src) && src[n] == '.' && src[n+1] >= '0' && src[n+1] <= '9' {
				n++
				for n < len(src) && src[n] >= '0' && src[n] <= '9' {
					n++
				}
			}
			if n < len(src) && (src[n] == 'e' || src[n] == 'E') && n+1 < len(src) &&
				(src[n+1] >= '0' && src[n+1] <= '9' || (src[n+1] == '-' || src[n+1] == '+') && n+2 < len(src) && src[n+2] >= '0' && src[n+2] <= '9') {
				n += 2
				for n < len(src) && src[n] >= '0' && src[n] <= '9' {
					n++
				}
			}
			num := src[i:n]
			// A unit suffix makes it a timespan.
			u := n
			for u < len(src) && isIdentChar(src[u]) {
				u++
			}
			if u > n {
				unit := strings.ToLower(src[n:u])
				if _, ok := timespanUnits[unit]; !ok {
					if unit == "l" { // long suffix: 10L
						toks = append(toks, token{kind: tNumber, text: num, pos: start})
						i = u
						continue
					}
					return nil, syntaxErr(src, start, "Query could not be parsed at '%s'", src[i:u])
				}
				d, err := parseTimespanText(num + unit)
				if err != nil {
					return nil, syntaxErr(src, start, "Query could not be parsed at '%s'", src[i:u])
				}
				toks = append(toks, token{kind: tTimespan, text: src[i:u], pos: start, dur: int64(d / Tick)})
				i = u
				continue
			}
			toks = append(toks, token{kind: tNumber, text: num, pos: start})
			i = n
		case isIdentStart(c):
			n := i
			for n < len(src) && isIdentChar(src[n]) {
				n++
			}
			word := src[i:n]
			for _, kw := range dashedKeywords {
				if strings.HasPrefix(src[i:], kw) && (i+len(kw) >= len(src) || !isIdentChar(src[i+len(kw)])) {
					word = kw
					n = i + len(kw)
					break
				}
			}
			if rawLiterals[word] {
				// datetime(...), dynamic([...]): read the text up to the
				// matching parenthesis.
				j := n
				for j < len(src) && (src[j] == ' ' || src[j] == '\t') {
					j++
				}
				if j < len(src) && src[j] == '(' {
					body, end, err := rawBody(src, j)
					if err != nil {
						return nil, err
					}
					fn := word
					if fn == "time" {
						fn = "timespan"
					}
					toks = append(toks, token{kind: tRaw, text: body, fn: fn, pos: start})
					i = end
					continue
				}
			}
			toks = append(toks, token{kind: tIdent, text: word, pos: start})
			i = n
		default:
			p := ""
			for _, op := range []string{"==", "!=", "<>", "<=", ">=", "=~", "!~", ".."} {
				if strings.HasPrefix(src[i:], op) {
					p = op
					break
				}
			}
			if p == "" {
				if strings.ContainsRune("|()[],.=<>+-*/%!;:~", rune(c)) {
					p = string(c)
				} else {
					r, _ := utf8.DecodeRuneInString(src[i:])
					return nil, syntaxErr(src, start, "Query could not be parsed at '%c'", r)
				}
			}
			toks = append(toks, token{kind: tPunct, text: p, pos: start})
			i += len(p)
		}
	}
}

func isIdentStart(c byte) bool {
	return c == '_' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isIdentChar(c byte) bool {
	return isIdentStart(c) || c >= '0' && c <= '9'
}

// lexString reads a quoted string starting at src[i] (the quote). Regular
// strings take backslash escapes; verbatim (@'...') strings take none.
func lexString(src string, i int, verbatim bool) (string, int, error) {
	q := src[i]
	var b strings.Builder
	j := i + 1
	for j < len(src) {
		c := src[j]
		switch {
		case c == q:
			return b.String(), j + 1, nil
		case c == '\\' && !verbatim:
			if j+1 >= len(src) {
				return "", 0, syntaxErr(src, i, "unterminated string literal")
			}
			e := src[j+1]
			switch e {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case '\\', '\'', '"':
				b.WriteByte(e)
			case 'u':
				if j+6 > len(src) {
					return "", 0, syntaxErr(src, j, "invalid escape in string literal")
				}
				n, err := strconv.ParseUint(src[j+2:j+6], 16, 32)
				if err != nil {
					return "", 0, syntaxErr(src, j, "invalid escape in string literal")
				}
				b.WriteRune(rune(n))
				j += 6
				continue
			default:
				return "", 0, syntaxErr(src, j, "invalid escape '\\%c' in string literal", e)
			}
			j += 2
		case c == '\n' && !verbatim:
			return "", 0, syntaxErr(src, i, "unterminated string literal")
		default:
			b.WriteByte(c)
			j++
		}
	}
	return "", 0, syntaxErr(src, i, "unterminated string literal")
}

// rawBody returns the text between the parenthesis at src[open] and its
// match, honouring nested brackets and quoted strings.
func rawBody(src string, open int) (string, int, error) {
	depth := 0
	for j := open; j < len(src); j++ {
		switch c := src[j]; c {
		case '(', '[', '{':
			depth++
		case ')', ']', '}':
			depth--
			if depth == 0 {
				if c != ')' {
					return "", 0, syntaxErr(src, j, "Query could not be parsed at '%c'", c)
				}
				return strings.TrimSpace(src[open+1 : j]), j + 1, nil
			}
		case '\'', '"':
			_, n, err := lexString(src, j, false)
			if err != nil {
				return "", 0, err
			}
			j = n - 1
		}
	}
	return "", 0, syntaxErr(src, open, "missing ')'")
}
