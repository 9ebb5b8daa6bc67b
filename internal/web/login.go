package web

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"

	"github.com/clarion/sentinel/internal/auth"
)

// loginCookie carries the sign-in form's anti-forgery token. There is no
// session yet, so the form is protected by a double-submit token: the value
// is both in this cookie and in the form, and a cross-site page can set
// neither. (Cross-origin POSTs are refused before that, too.)
const loginCookie = "clarion_login"

type loginData struct {
	CSRF      string
	Next      string
	Email     string
	Errors    map[string]string
	SignedOut bool
}

func (h *Handler) loginPage(w http.ResponseWriter, r *http.Request) {
	next := localPath(r.URL.Query().Get("next"))
	if c, err := r.Cookie(h.sessionCookie()); err == nil {
		if _, err := h.cfg.Auth.Session(r.Context(), c.Value); err == nil {
			if next == "" {
				next = "/integrations"
			}
			http.Redirect(w, r, next, http.StatusSeeOther)
			return
		}
	}
	h.renderLogin(w, r, http.StatusOK, loginData{Next: next, SignedOut: r.URL.Query().Get("signed_out") == "1"})
}

// renderLogin shows the sign-in form with a fresh double-submit token.
func (h *Handler) renderLogin(w http.ResponseWriter, r *http.Request, status int, d loginData) {
	b := make([]byte, 32)
	rand.Read(b)
	d.CSRF = base64.RawURLEncoding.EncodeToString(b)
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: d.CSRF, Path: "/login", MaxAge: 3600,
		HttpOnly: true, Secure: h.cfg.SecureCookies, SameSite: http.SameSiteLaxMode})
	h.render(w, r, status, "login.html", page{Title: "Sign in", Data: d})
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		h.errorPage(w, r, http.StatusBadRequest, "Bad request", "The form could not be read. Go back and try again.")
		return
	}
	d := loginData{Next: localPath(r.PostForm.Get("next")), Email: r.PostForm.Get("email"), Errors: map[string]string{}}
	c, err := r.Cookie(loginCookie)
	if err != nil || c.Value == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostForm.Get("login_csrf"))) != 1 {
		// An old tab or blocked cookies: show the form again, fresh.
		d.Errors["form"] = "The sign-in form expired. Enter your email and password again."
		h.renderLogin(w, r, http.StatusForbidden, d)
		return
	}
	email, password := auth.NormalizeEmail(d.Email), r.PostForm.Get("password")
	if email == "" {
		d.Errors["email"] = "Enter your email address."
	}
	if password == "" {
		d.Errors["password"] = "Enter your password."
	}
	if len(d.Errors) > 0 {
		h.renderLogin(w, r, http.StatusUnprocessableEntity, d)
		return
	}
	token, se, err := h.cfg.Auth.Login(r.Context(), email, password)
	switch {
	case errors.Is(err, auth.ErrInvalidCredentials):
		h.log.Info("sign-in refused", "reason", "invalid credentials")
		d.Errors["password"] = "The email address or password is incorrect."
		h.renderLogin(w, r, http.StatusUnprocessableEntity, d)
		return
	case err != nil:
		h.internal(w, r, "sign in", err)
		return
	}
	h.log.Info("signed in", "user_id", se.UserID, "workspace_id", se.WorkspaceID)
	h.setSessionCookie(w, token, se.ExpiresAt)
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: "", Path: "/login", MaxAge: -1,
		HttpOnly: true, Secure: h.cfg.SecureCookies, SameSite: http.SameSiteLaxMode})
	next := d.Next
	if next == "" {
		next = "/integrations"
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request, v *visit) {
	if c, err := r.Cookie(h.sessionCookie()); err == nil {
		if err := h.cfg.Auth.Logout(r.Context(), c.Value); err != nil {
			h.internal(w, r, "sign out", err)
			return
		}
	}
	h.log.Info("signed out", "user_id", v.UserID)
	h.clearSessionCookie(w)
	http.Redirect(w, r, "/login?signed_out=1", http.StatusSeeOther)
}
