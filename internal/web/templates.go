package web

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"path"
	"strings"
	"time"
)

// pages are the UI's templates, parsed once: each page file is parsed over
// a copy of the layout and the shared partials.
var pages = mustParsePages()

// assetVersions are the first hex digits of each static file's SHA-256:
// pages link /static/app.css?v=<version>, so that browsers may keep a file
// for long and still see a new one at once after an upgrade.
var assetVersions = func() map[string]string {
	m := map[string]string{}
	_ = fs.WalkDir(assets, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(assets, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		m[strings.TrimPrefix(p, "static/")] = hex.EncodeToString(sum[:6])
		return nil
	})
	return m
}()

// funcs are display helpers only: formatting, never decisions.
var funcs = template.FuncMap{
	// asset is the versioned URL of a static file.
	"asset": func(name string) string { return "/static/" + name + "?v=" + assetVersions[name] },
	// fmtTime is a time as people read it, in UTC; "" for the zero time.
	"fmtTime": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	// isoTime is the machine-readable form for <time datetime>.
	"isoTime": func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) },
	// label capitalises a code such as a severity: "high" → "High".
	"label": func(s string) string {
		if s == "" {
			return ""
		}
		return strings.ToUpper(s[:1]) + s[1:]
	},
	// dict builds a map for passing several values to a partial.
	"dict": func(kv ...any) (map[string]any, error) {
		if len(kv)%2 != 0 {
			return nil, fmt.Errorf("dict: odd number of arguments")
		}
		m := make(map[string]any, len(kv)/2)
		for i := 0; i < len(kv); i += 2 {
			k, ok := kv[i].(string)
			if !ok {
				return nil, fmt.Errorf("dict: key %v is not a string", kv[i])
			}
			m[k] = kv[i+1]
		}
		return m, nil
	},
}

func mustParsePages() map[string]*template.Template {
	base := template.Must(template.New("base").Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/partials.html"))
	files, err := fs.Glob(assets, "templates/pages/*.html")
	if err != nil || len(files) == 0 {
		panic(fmt.Sprintf("web: no page templates: %v", err))
	}
	out := make(map[string]*template.Template, len(files))
	for _, f := range files {
		out[path.Base(f)] = template.Must(template.Must(base.Clone()).ParseFS(assets, f))
	}
	return out
}
