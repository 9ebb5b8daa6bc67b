// Package web owns Clarion's server-rendered web UI: sign-in, the
// Integrations → Microsoft Sentinel page (connect, state, troubleshooting,
// monitors with their sync health, add / edit / delete monitor, disconnect),
// the alerts list (live) and detail, and the skill editor.
//
// Pages are html/template files embedded in the binary and parsed once;
// the one script is hand-written and only adds live alerts to a page that
// works without it. Every page shows what the same service methods return
// that the JSON API calls (integration.Service, connection.Service); a
// signed-in browser carries an api.Principal on its request context, so the
// calls are scoped to the person's workspace exactly as an API token's are.
// Every text from a person or from Microsoft is rendered as text by
// html/template's contextual escaping; nothing here builds template.HTML.
package web

import (
	"bytes"
	"context"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/clarion/sentinel/internal/api"
	"github.com/clarion/sentinel/internal/auth"
	"github.com/clarion/sentinel/internal/connection"
	"github.com/clarion/sentinel/internal/integration"
	"github.com/clarion/sentinel/internal/store"
	"github.com/clarion/sentinel/internal/tools"
)

//go:embed templates static
var assets embed.FS

// Config holds the UI's dependencies.
type Config struct {
	Auth        *auth.Service
	Integration *integration.Service
	Connections *connection.Service
	// Connector starts the connect flow for "Connect with Microsoft"
	// (api.API.StartConnect: it binds the flow to the browser).
	Connector Connector
	// Tools serves the skill editor; without it the page says the editor
	// is not available.
	Tools  *tools.Service
	Logger *slog.Logger
	// SecureCookies marks cookies Secure and gives the session cookie the
	// __Host- prefix; set it when Clarion is served over https.
	SecureCookies bool
	// FormActions are the origins, besides Clarion's own, that a form may
	// lead to: "Connect with Microsoft" posts to Clarion, which redirects
	// to the Entra authority, and browsers hold that redirect to the
	// page's Content-Security-Policy form-action.
	FormActions []string
	// StreamPoll is how often an open alerts page is sent new alerts
	// (default 2 s).
	StreamPoll time.Duration
	// StreamMaxAge ends an alert stream after this long; the browser
	// reconnects at once and is authenticated again (default 10 min).
	StreamMaxAge time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Connector begins the connect flow of a workspace and redirects the
// browser to Microsoft (*api.API).
type Connector interface {
	StartConnect(w http.ResponseWriter, r *http.Request, workspaceID, returnTo string)
}

// Handler serves the web UI. Create it with New and add its routes to a
// mux with Register:
//
//	GET  /login, POST /login, POST /logout           sign in (local accounts) and out
//	GET  /integrations                               the integrations and their state
//	GET  /integrations/sentinel                      Microsoft Sentinel: connect, state, troubleshooting, monitors
//	POST /integrations/sentinel/connect              start the connect flow (the API's callback comes back here)
//	GET, POST /integrations/sentinel/disconnect      confirm (listing the monitors removed), disconnect
//	GET  /integrations/sentinel/monitors/new         add a monitor (POST /integrations/sentinel/monitors)
//	GET, POST /integrations/sentinel/monitors/{id}/edit    edit, with sync health and diagnosis
//	GET, POST /integrations/sentinel/monitors/{id}/delete  confirm, delete
//	GET  /alerts, /alerts/{id}                       alerts list (filters, pages) and detail
//	GET  /alerts/stream                              new alerts as Server-Sent Events, for the list
//	GET, POST /skills; GET /skills/{name}            skills; create; the skill editor
//	POST /skills/{name}/toolsets/{toolset}/{attach|detach}, POST /skills/{name}/delete
//	GET  /static/…                                   the stylesheet and the script
//
// Every route but /login and /static needs a session; every POST carries
// the session's CSRF token and must come from Clarion's own pages.
type Handler struct {
	cfg   Config
	log   *slog.Logger
	pages map[string]*template.Template
	csp   string
	xorig *http.CrossOriginProtection

	stop     chan struct{} // closed by Shutdown: alert streams end
	stopOnce sync.Once
}

// New builds the UI.
func New(cfg Config) (*Handler, error) {
	if cfg.Auth == nil || cfg.Integration == nil || cfg.Connections == nil || cfg.Connector == nil {
		return nil, errors.New("web: Auth, Integration, Connections and Connector are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.StreamPoll <= 0 {
		cfg.StreamPoll = 2 * time.Second
	}
	if cfg.StreamMaxAge <= 0 {
		cfg.StreamMaxAge = 10 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	formActions := []string{"'self'"}
	for _, o := range cfg.FormActions {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("web: form action %q is not an http(s) origin", o)
		}
		formActions = append(formActions, u.Scheme+"://"+u.Host)
	}
	h := &Handler{
		cfg:   cfg,
		log:   cfg.Logger.With("component", "web"),
		pages: pages,
		csp: "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
			"form-action " + strings.Join(formActions, " ") + "; base-uri 'none'; frame-ancestors 'none'",
		xorig: http.NewCrossOriginProtection(),
		stop:  make(chan struct{}),
	}
	h.xorig.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.errorPage(w, r, http.StatusForbidden, "Request refused",
			"This form was sent from another site, so Clarion refused it. Open Clarion directly and try again.")
	}))
	return h, nil
}

// Shutdown ends the open alert streams (the HTTP server waits for them
// otherwise). It is safe to call more than once.
func (h *Handler) Shutdown() { h.stopOnce.Do(func() { close(h.stop) }) }

func (h *Handler) now() time.Time { return h.cfg.Now().UTC() }

// Register adds the UI's routes to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	static, _ := fs.Sub(assets, "static")
	files := http.StripPrefix("/static/", http.FileServerFS(static))
	mux.Handle("GET /static/", h.headers(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Versioned links (see assetVersions) change with the content.
		if v := r.URL.Query().Get("v"); v != "" && v == assetVersions[strings.TrimPrefix(r.URL.Path, "/static/")] {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			w.Header().Set("Cache-Control", "no-cache")
		}
		files.ServeHTTP(w, r)
	})))

	open := func(fn http.HandlerFunc) http.Handler { return h.headers(h.xorig.Handler(fn)) }
	mux.Handle("GET /login", open(h.loginPage))
	mux.Handle("POST /login", open(h.login))

	signedIn := func(fn pageFunc) http.Handler { return h.headers(h.xorig.Handler(h.session(fn))) }
	mux.Handle("GET /{$}", signedIn(func(w http.ResponseWriter, r *http.Request, _ *visit) {
		http.Redirect(w, r, "/integrations", http.StatusSeeOther)
	}))
	mux.Handle("POST /logout", signedIn(h.logout))

	mux.Handle("GET /integrations", signedIn(h.integrations))
	mux.Handle("GET /integrations/sentinel", signedIn(h.sentinel))
	mux.Handle("POST /integrations/sentinel/connect", signedIn(h.connect))
	mux.Handle("GET /integrations/sentinel/disconnect", signedIn(h.disconnectPage))
	mux.Handle("POST /integrations/sentinel/disconnect", signedIn(h.disconnect))
	mux.Handle("GET /integrations/sentinel/monitors/new", signedIn(h.newMonitor))
	mux.Handle("POST /integrations/sentinel/monitors", signedIn(h.createMonitor))
	mux.Handle("GET /integrations/sentinel/monitors/{id}/edit", signedIn(h.editMonitor))
	mux.Handle("POST /integrations/sentinel/monitors/{id}/edit", signedIn(h.updateMonitor))
	mux.Handle("GET /integrations/sentinel/monitors/{id}/delete", signedIn(h.deleteMonitorPage))
	mux.Handle("POST /integrations/sentinel/monitors/{id}/delete", signedIn(h.deleteMonitor))

	mux.Handle("GET /alerts", signedIn(h.alerts))
	mux.Handle("GET /alerts/stream", signedIn(h.alertStream))
	mux.Handle("GET /alerts/{id}", signedIn(h.alert))

	mux.Handle("GET /skills", signedIn(h.skills))
	mux.Handle("POST /skills", signedIn(h.createSkill))
	mux.Handle("GET /skills/{name}", signedIn(h.skill))
	mux.Handle("POST /skills/{name}/toolsets/{toolset}/{action}", signedIn(h.changeToolset))
	mux.Handle("POST /skills/{name}/delete", signedIn(h.deleteSkill))
}

// headers sets the security headers of every UI response.
func (h *Handler) headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", h.csp)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

// ---- sessions ----

// visit is a signed-in request: the session and the principal on whose
// behalf the services are called.
type visit struct {
	store.Session
	Principal api.Principal
}

type pageFunc func(w http.ResponseWriter, r *http.Request, v *visit)

type visitKey struct{}

// maxForm bounds a form body; the largest form (a monitor) is a few hundred bytes.
const maxForm = 64 << 10

// session requires a signed-in browser. It puts the person's api.Principal
// on the request context and, for every POST, checks the session's CSRF
// token (the "csrf_token" form field) before anything else runs.
func (h *Handler) session(fn pageFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var se store.Session
		var err error
		if c, cerr := r.Cookie(h.sessionCookie()); cerr == nil {
			se, err = h.cfg.Auth.Session(r.Context(), c.Value)
		} else {
			err = auth.ErrNoSession
		}
		if err != nil {
			if !errors.Is(err, auth.ErrNoSession) {
				h.internal(w, r, "session", err)
				return
			}
			switch {
			case r.Method == http.MethodGet && r.URL.Path == "/alerts/stream":
				// EventSource gives up on a non-200 answer: no retry storm.
				http.Error(w, "signed out", http.StatusUnauthorized)
			case r.Method == http.MethodGet:
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			default:
				h.errorPage(w, r, http.StatusForbidden, "Signed out",
					"Your session has ended, so nothing was changed. Sign in again and repeat what you were doing.")
			}
			return
		}
		p := api.Principal{WorkspaceID: se.WorkspaceID, UserID: se.UserID}
		v := &visit{Session: se, Principal: p}
		r = r.WithContext(context.WithValue(api.WithPrincipal(r.Context(), p), visitKey{}, v))
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxForm)
			if err := r.ParseForm(); err != nil {
				h.errorPage(w, r, http.StatusBadRequest, "Bad request", "The form could not be read. Go back and try again.")
				return
			}
			if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf_token")), []byte(se.CSRFToken)) != 1 {
				h.errorPage(w, r, http.StatusForbidden, "This form has expired",
					"Clarion could not confirm that this form came from your current session, so nothing was changed. Go back, reload the page and try again.")
				return
			}
		}
		fn(w, r, v)
	})
}

func (h *Handler) sessionCookie() string {
	if h.cfg.SecureCookies {
		// __Host-: only ever set over https, for this host, on path /.
		return "__Host-clarion_session"
	}
	return "clarion_session"
}

func (h *Handler) setSessionCookie(w http.ResponseWriter, token string, expires time.Time) {
	http.SetCookie(w, &http.Cookie{Name: h.sessionCookie(), Value: token, Path: "/", Expires: expires,
		HttpOnly: true, Secure: h.cfg.SecureCookies, SameSite: http.SameSiteLaxMode})
}

func (h *Handler) clearSessionCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: h.sessionCookie(), Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: h.cfg.SecureCookies, SameSite: http.SameSiteLaxMode})
}

// ---- rendering ----

// page is what every template gets.
type page struct {
	Title   string
	Nav     string // the main navigation entry to mark current
	Email   string // the signed-in person, "" on the sign-in page
	CSRF    string // the session's CSRF token, for every form
	Notices []notice
	Data    any
}

// notice is one message box: an outcome, a problem with its remedy.
type notice struct {
	ID      string // element id, stable for tests and links
	Kind    string // "success", "info", "warning" or "error"
	Title   string
	Message string
	Remedy  string
	Command string // a command the remedy asks to run, shown as code
}

func (v *visit) page(title, nav string, data any, notices ...notice) page {
	return page{Title: title, Nav: nav, Email: v.Email, CSRF: v.CSRFToken, Notices: notices, Data: data}
}

// render writes a page; the template runs into a buffer first so that a
// failure never leaves half a page.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	t, ok := h.pages[name]
	if !ok {
		h.internal(w, r, "render", fmt.Errorf("web: no page %q", name))
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", p); err != nil {
		h.internal(w, r, "render "+name, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// errorPage is a whole page saying what went wrong and what to do.
func (h *Handler) errorPage(w http.ResponseWriter, r *http.Request, status int, title, message string) {
	p := page{Title: title, Data: struct{ Title, Message string }{title, message}}
	if v, ok := r.Context().Value(visitKey{}).(*visit); ok {
		// Keep the navigation for a signed-in person.
		p.Email, p.CSRF = v.Email, v.CSRFToken
	}
	t := h.pages["error.html"]
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", p); err != nil {
		h.log.Error("render error page", "err", err)
		http.Error(w, title+": "+message, status)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (h *Handler) notFound(w http.ResponseWriter, r *http.Request, what string) {
	h.errorPage(w, r, http.StatusNotFound, "Not found", "There is no such "+what+" in this workspace. It may have been deleted.")
}

// internal logs the full error once and shows a page without its details.
func (h *Handler) internal(w http.ResponseWriter, r *http.Request, what string, err error) {
	h.log.Error(what, "method", r.Method, "path", r.URL.Path, "err", err)
	h.errorPage(w, r, http.StatusInternalServerError, "Something went wrong",
		"Something went wrong on Clarion's side; the error was logged. Try again in a moment.")
}

// localPath keeps a redirect target only if it is a path on this site.
func localPath(p string) string {
	if p == "" || p[0] != '/' || strings.HasPrefix(p, "//") || strings.ContainsAny(p, "\\\r\n") {
		return ""
	}
	u, err := url.Parse(p)
	if err != nil || u.Scheme != "" || u.Host != "" {
		return ""
	}
	return p
}

// withTimeout bounds calls to Microsoft made while a page renders.
func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, 15*time.Second)
}
