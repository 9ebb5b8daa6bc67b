package web_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/clarion/sentinel/internal/auth"
)

// TestSignIn: a page needs a signed-in person; a wrong password is refused
// next to the field with the email kept; the session cookie is HttpOnly and
// SameSite=Lax; signing out ends the session.
func TestSignIn(t *testing.T) {
	t.Parallel()
	e := setup(t)

	// Signed out, a page leads to the sign-in form and back after it.
	e.open("/integrations/sentinel", "#email")
	contains(t, "location", e.location(), "/login?next=%2Fintegrations%2Fsentinel")
	e.shot("1-form")

	e.fill("#email", userEmail)
	e.fill("#password", "not the password")
	e.click("#sign-in", "#password-error")
	contains(t, "password error", e.text("#password-error"), "The email address or password is incorrect.")
	mustEqual(t, "email kept", run(e, chromedp.Value(chromedp.CSS("#email"))), userEmail)
	mustEqual(t, "password field aria-invalid", js[string](e, `document.getElementById("password").getAttribute("aria-invalid")`), "true")
	e.shot("2-wrong-password")

	// An empty email is refused next to the email field, the rest kept.
	e.fill("#email", "")
	e.fill("#password", "something")
	e.click("#sign-in", "#email-error")
	contains(t, "email error", e.text("#email-error"), "Enter your email address.")

	e.fill("#email", userEmail)
	e.fill("#password", userPassword)
	e.click("#sign-in", "#connection-state") // back where the person was going
	mustEqual(t, "signed in as", e.text("#signed-in-as"), userEmail)
	mustEqual(t, "state", e.text("#connection-state"), "Not connected")
	e.shot("3-signed-in")

	ctx, cancel := context.WithTimeout(e.tab, stepTimeout)
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{e.url + "/"}})
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, c := range res.Cookies {
		if c.Name != "clarion_session" {
			continue
		}
		found = true
		if !c.HTTPOnly || c.SameSite != network.CookieSameSiteLax || c.Secure || c.Path != "/" || len(c.Value) < 43 {
			t.Fatalf("session cookie: HttpOnly=%v SameSite=%v Secure=%v Path=%s len=%d; want HttpOnly, Lax, not Secure over http, /, 256-bit",
				c.HTTPOnly, c.SameSite, c.Secure, c.Path, len(c.Value))
		}
		// The store keeps the token's hash, not the token.
		if _, err := e.app.Store.LookupSession(t.Context(), []byte(c.Value), time.Now()); err == nil {
			t.Fatal("the raw token finds a session: tokens must be stored hashed")
		}
		if _, err := e.app.Store.LookupSession(t.Context(), auth.HashToken(c.Value), time.Now()); err != nil {
			t.Fatalf("the token's hash finds no session: %v", err)
		}
	}
	if !found {
		t.Fatal("no clarion_session cookie after signing in")
	}
	if got := js[bool](e, `document.cookie.includes("clarion_session")`); got {
		t.Fatal("page script can read the session cookie")
	}

	e.click("#sign-out", "#signed-out")
	e.shot("4-signed-out")
	e.open("/alerts", "#email") // the session is gone
	if !strings.Contains(e.location(), "/login") {
		t.Fatalf("after sign-out /alerts went to %s, want the sign-in page", e.location())
	}
}
