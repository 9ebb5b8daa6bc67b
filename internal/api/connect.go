package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"
	"net/url"

	"github.com/clarion/sentinel/internal/connection"
)

// bindCookie ties an OAuth state to the browser that started the flow: it
// holds a hash of the state Clarion sent to Microsoft, and the callback
// refuses a state this browser did not start. Without it, an attacker could
// send an admin a consent link of the attacker's own Clarion workspace and
// collect the admin's tenant credential there (login CSRF).
const bindCookie = "clarion_oauth"

func stateHash(state string) string {
	h := sha256.Sum256([]byte("clarion-oauth-state:" + state))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// bind sets the binding cookie for the state carried by the URL we are
// about to redirect the browser to.
func (a *API) bind(w http.ResponseWriter, next string) {
	u, err := url.Parse(next)
	if err != nil {
		return
	}
	st := u.Query().Get("state")
	if st == "" {
		return
	}
	http.SetCookie(w, &http.Cookie{Name: bindCookie, Value: stateHash(st), Path: "/integrations/sentinel",
		MaxAge: 900, HttpOnly: true, Secure: a.SecureCookies, SameSite: http.SameSiteLaxMode})
}

// connect starts the connect flow: admin consent, then the admin's sign-in.
func (a *API) connect(w http.ResponseWriter, r *http.Request, p Principal) {
	next, err := a.Connections.BeginConnect(r.Context(), p.WorkspaceID, r.URL.Query().Get("return_to"))
	if err != nil {
		a.internal(w, "begin connect", err)
		return
	}
	a.bind(w, next)
	http.Redirect(w, r, next, http.StatusFound)
}

// callback receives both redirects from Microsoft (consent, then sign-in);
// the state parameter says which and binds them to the Clarion workspace.
func (a *API) callback(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(bindCookie); err != nil || subtle.ConstantTimeCompare([]byte(c.Value), []byte(stateHash(r.URL.Query().Get("state")))) != 1 {
		a.log().Warn("connect callback from a browser that did not start it")
		a.finish(w, r, "", "", "invalid_state", "This sign-in was not started from this browser, or it expired. Start again from Integrations → Microsoft Sentinel → Connect with Microsoft.")
		return
	}
	res, err := a.Connections.Callback(r.Context(), r.URL.Query())
	var ce *connection.ConnectError
	switch {
	case errors.As(err, &ce):
		a.log().Info("connect failed", "code", ce.Code, "workspace_id", res.WorkspaceID)
		a.finish(w, r, res.ReturnTo, "", ce.Code, ce.Message)
		return
	case err != nil:
		a.log().Error("connect callback", "err", err)
		a.finish(w, r, res.ReturnTo, "", "internal", "Something went wrong on Clarion's side while connecting; try again.")
		return
	case res.Next != "":
		a.bind(w, res.Next)
		http.Redirect(w, r, res.Next, http.StatusFound)
		return
	}
	if a.Integration != nil {
		if err := a.Integration.Connected(r.Context(), res.WorkspaceID); err != nil {
			a.log().Warn("resume polling after connect", "workspace_id", res.WorkspaceID, "err", err)
		}
	}
	a.log().Info("connected", "workspace_id", res.WorkspaceID)
	a.finish(w, r, res.ReturnTo, "1", "", "Microsoft Sentinel is connected.")
}

var resultPage = template.Must(template.New("r").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Microsoft Sentinel — Clarion</title></head>
<body><main><h1>Microsoft Sentinel</h1>
{{if .OK}}<p role="status" id="connect-result" data-ok="true">{{.Message}}</p>{{else}}<p role="alert" id="connect-result" data-code="{{.Code}}">{{.Message}}</p>{{end}}
</main></body></html>`))

// finish ends the flow: back to the page that started it (only a local
// path, never another site), or a small result page.
func (a *API) finish(w http.ResponseWriter, r *http.Request, returnTo, ok, code, msg string) {
	dest := a.Connected
	if u, err := url.Parse(returnTo); err == nil && returnTo != "" && u.Scheme == "" && u.Host == "" && len(u.Path) > 0 && u.Path[0] == '/' && (len(u.Path) < 2 || u.Path[1] != '/') {
		dest = returnTo
	}
	if dest != "" {
		u, _ := url.Parse(dest)
		q := u.Query()
		if ok != "" {
			q.Set("connected", ok)
		} else {
			q.Set("error", code)
		}
		u.RawQuery = q.Encode()
		http.Redirect(w, r, u.String(), http.StatusFound)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if ok == "" {
		w.WriteHeader(http.StatusBadRequest)
	}
	_ = resultPage.Execute(w, map[string]any{"OK": ok != "", "Code": code, "Message": msg})
}
