package tools

import (
	"bytes"
	"encoding/json"
	"math"
	"regexp"
	"strings"
	"unicode"
)

// Redaction of what the audit record keeps. Arguments are stored so that a
// person can see what an agent asked; secrets must not end up in the
// database because an agent pasted one into a query. The rules:
//
//   - the value of any key named like a secret is replaced whole: a key
//     with a word key, pwd, passwd, auth, sas, sig, cookie, bearer or
//     authorization (words split at camelCase, _, -, . and spaces), or one
//     that contains password, passphrase, secret, token, apikey, accesskey,
//     privatekey, credential or connectionstring;
//   - inside every other string (KQL text included): JWTs (eyJ….….…),
//     "Bearer <value>", and long random-looking runs: 32 or more characters
//     of [A-Za-z0-9+/=_-] that mix upper and lower case with the variety of
//     random text (see randomLooking). GUIDs, hex hashes, machine ids,
//     CamelCase table and column names and ordinary words do not match:
//     they lack either case or the variety.
//
// Redacted parts read "[redacted]".

const redacted = "[redacted]"

var (
	secretWords  = map[string]bool{"key": true, "keys": true, "pwd": true, "passwd": true, "auth": true, "sas": true, "sig": true, "cookie": true, "cookies": true, "bearer": true, "authorization": true}
	secretInside = []string{"password", "passphrase", "secret", "token", "apikey", "accesskey", "privatekey", "credential", "connectionstring"}
	jwtRE        = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*`)
	bearerRE     = regexp.MustCompile(`(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+`)
	runRE        = regexp.MustCompile(`[A-Za-z0-9+/=_-]{32,}`)
)

// secretKey reports whether a key names a secret.
func secretKey(key string) bool {
	squashed := strings.ToLower(strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			return r
		}
		return -1
	}, key))
	for _, s := range secretInside {
		if strings.Contains(squashed, s) {
			return true
		}
	}
	for _, w := range words(key) {
		if secretWords[w] {
			return true
		}
	}
	return false
}

// words splits a key at camelCase boundaries and separators, lower case.
func words(key string) []string {
	var out []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			out = append(out, strings.ToLower(string(cur)))
			cur = cur[:0]
		}
	}
	rs := []rune(key)
	for i, r := range rs {
		switch {
		case !unicode.IsLetter(r) && !unicode.IsDigit(r):
			flush()
			continue
		case unicode.IsUpper(r) && len(cur) > 0 && (unicode.IsLower(cur[len(cur)-1]) || (i+1 < len(rs) && unicode.IsLower(rs[i+1]))):
			flush()
		}
		cur = append(cur, r)
	}
	flush()
	return out
}

// randomLooking reports whether a run of token characters looks like a
// secret rather than a name, a hash or an id: both cases, the character
// variety of random text (Shannon entropy of at least 4 bits per
// character), and frequent switches between upper case, lower case, digits
// and symbols (at least 38 in 100 neighbours), which CamelCase names and
// words (about 30 in 100) do not have.
func randomLooking(s string) bool {
	class := func(r rune) int {
		switch {
		case r >= 'A' && r <= 'Z':
			return 1
		case r >= 'a' && r <= 'z':
			return 2
		case r >= '0' && r <= '9':
			return 3
		}
		return 4
	}
	var upper, lower, switches int
	counts := map[rune]int{}
	prev := 0
	for i, r := range s {
		c := class(r)
		switch c {
		case 1:
			upper++
		case 2:
			lower++
		}
		if i > 0 && c != prev {
			switches++
		}
		prev = c
		counts[r]++
	}
	if upper == 0 || lower == 0 {
		return false
	}
	n := float64(len(s))
	entropy := 0.0
	for _, c := range counts {
		p := float64(c) / n
		entropy -= p * math.Log2(p)
	}
	return entropy >= 4.0 && float64(switches)/(n-1) >= 0.38
}

// RedactText removes secret-looking parts of a text.
func RedactText(s string) string {
	s = jwtRE.ReplaceAllString(s, redacted)
	s = bearerRE.ReplaceAllString(s, "Bearer "+redacted)
	return runRE.ReplaceAllStringFunc(s, func(run string) string {
		if randomLooking(run) {
			return redacted
		}
		return run
	})
}

// redactValue redacts a decoded JSON value in place and returns it.
func redactValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, el := range x {
			if secretKey(k) {
				if el != nil {
					x[k] = redacted
				}
				continue
			}
			x[k] = redactValue(el)
		}
		return x
	case []any:
		for i, el := range x {
			x[i] = redactValue(el)
		}
		return x
	case string:
		return RedactText(x)
	}
	return v
}

// RedactArguments returns the arguments of a call as the audit record keeps
// them: JSON text, secrets redacted. Arguments that are not JSON are kept
// as a redacted JSON string.
func RedactArguments(raw json.RawMessage) string {
	b := bytes.TrimSpace(raw)
	if len(b) == 0 || bytes.Equal(b, []byte("null")) {
		return "{}"
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		out, _ := json.Marshal(RedactText(clip(string(b), 4000)))
		return string(out)
	}
	out, err := json.Marshal(redactValue(v))
	if err != nil {
		return "{}"
	}
	return string(out)
}
