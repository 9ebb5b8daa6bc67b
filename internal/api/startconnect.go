package api

import "net/http"

// StartConnect begins the connect flow of a workspace for a browser that
// is already authenticated some other way (the web UI's "Connect with
// Microsoft" form, which checks the session and its CSRF token): it binds
// the flow to this browser, exactly as the connect route does, and
// redirects it to Microsoft's admin consent. returnTo is a local path the
// callback sends the browser back to, with ?connected=1 or ?error=<code>.
func (a *API) StartConnect(w http.ResponseWriter, r *http.Request, workspaceID, returnTo string) {
	next, err := a.Connections.BeginConnect(r.Context(), workspaceID, returnTo)
	if err != nil {
		a.internal(w, "begin connect", err)
		return
	}
	a.bind(w, next)
	http.Redirect(w, r, next, http.StatusSeeOther)
}
