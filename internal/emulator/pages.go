package emulator

import (
	"bytes"
	"embed"
	"html/template"
	"net/http"
	"slices"
)

//go:embed templates/*.html
var templateFS embed.FS

var pages = template.Must(template.ParseFS(templateFS, "templates/*.html"))

// pageAccount is one account offered on a sign-in or consent page.
type pageAccount struct {
	Username, DisplayName, TenantName string
	Selected                          bool
}

// pagePermission is one permission listed on a page.
type pagePermission struct {
	Text, Resource, Scope string
}

type pageData struct {
	Kind, Title       string
	Action, Ctx       string
	AppName, ClientID string
	Accounts          []pageAccount
	Permissions       []pagePermission
	Message           string
	Trace, Time       string
}

func (e *Emulator) renderPage(w http.ResponseWriter, status int, name string, d pageData) {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, d); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// errorPage shows an Entra error that cannot be sent back to the app
// (unknown tenant, unknown client, unregistered redirect URI), as Entra
// does: on its own page.
func (e *Emulator) errorPage(w http.ResponseWriter, r *http.Request, ee *entraError) {
	trace := newTraceID()
	status := ee.status
	if status == 0 {
		status = http.StatusBadRequest
	}
	e.countError(r, ee.err)
	e.renderPage(w, status, "error.html", pageData{
		Kind:    "error",
		Title:   "Sign in to your account",
		Message: e.description(ee, trace, newTraceID()),
		Trace:   trace,
		Time:    fmtStamp(e.now()),
	})
}

// permissionsFor lists the permissions of a scope request for a page.
func permissionsFor(sr scopeRequest) []pagePermission {
	var out []pagePermission
	for _, res := range sr.resources {
		info := lookupResource(res)
		perms, _, ok := grantedPerms(res, sr.perms[res])
		if !ok {
			continue
		}
		for _, p := range perms {
			out = append(out, pagePermission{Text: info.perms[p], Resource: info.name, Scope: res + "/" + p})
		}
	}
	if sr.oidc["offline_access"] {
		out = append(out, pagePermission{Text: "Maintain access to data you have given it access to", Resource: "OpenID", Scope: "offline_access"})
	}
	if sr.oidc["openid"] || sr.oidc["profile"] {
		out = append(out, pagePermission{Text: "Sign you in and read your profile", Resource: "OpenID", Scope: "openid profile"})
	}
	return slices.Clip(out)
}
