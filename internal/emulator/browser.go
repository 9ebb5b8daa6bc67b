package emulator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
)

// Browser is a small scripted browser for tests and the demo. It follows
// redirects across hosts (Clarion → emulator → Clarion ...), keeps cookies,
// and on an emulator consent or sign-in page picks an account and presses
// Accept (or Cancel), as an admin would.
type Browser struct {
	client  *http.Client
	visited []string
}

// BrowseOptions steer ClickThrough.
type BrowseOptions struct {
	// Username is the account to pick on emulator pages; "" = the one the
	// page preselects (the login_hint, else the first).
	Username string
	// Cancel presses Cancel instead of Accept (the app then gets
	// error=access_denied).
	Cancel bool
	// Stop, when set, is asked before each redirect is followed; if it
	// returns true ClickThrough returns the redirect answer itself (its
	// Location header holds the URL). Use it when nothing serves the
	// redirect URI.
	Stop func(next *url.URL) bool
	// MaxSteps bounds the number of requests (default 20).
	MaxSteps int
}

// NewBrowser returns a browser using client's transport (nil: the default
// client). A client without a cookie jar gets one.
func NewBrowser(client *http.Client) *Browser {
	c := &http.Client{}
	if client != nil {
		*c = *client
	}
	if c.Jar == nil {
		jar, _ := cookiejar.New(nil)
		c.Jar = jar
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Browser{client: c}
}

// Visited lists the URLs requested by the last ClickThrough, in order.
func (b *Browser) Visited() []string { return append([]string(nil), b.visited...) }

var (
	formRe   = regexp.MustCompile(`(?s)<form\b([^>]*)\bdata-emulator-form="([a-z]+)"([^>]*)>(.*?)</form>`)
	actionRe = regexp.MustCompile(`\baction="([^"]*)"`)
	inputRe  = regexp.MustCompile(`<input\b[^>]*>`)
	attrRe   = regexp.MustCompile(`\b(type|name|value|checked)(?:="([^"]*)")?`)
)

// ClickThrough opens startURL and goes on until an answer is neither a
// redirect nor an emulator page, and returns that answer (body unread).
func (b *Browser) ClickThrough(ctx context.Context, startURL string, opts BrowseOptions) (*http.Response, error) {
	b.visited = nil
	maxSteps := opts.MaxSteps
	if maxSteps <= 0 {
		maxSteps = 20
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, startURL, nil)
	if err != nil {
		return nil, fmt.Errorf("emulator browser: %w", err)
	}
	for step := 0; step < maxSteps; step++ {
		b.visited = append(b.visited, req.Method+" "+req.URL.String())
		resp, err := b.client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("emulator browser: %s %s: %w", req.Method, req.URL, err)
		}
		if loc := resp.Header.Get("Location"); loc != "" && resp.StatusCode >= 300 && resp.StatusCode < 400 {
			next, err := req.URL.Parse(loc)
			if err != nil {
				resp.Body.Close()
				return nil, fmt.Errorf("emulator browser: bad redirect %q: %w", loc, err)
			}
			if opts.Stop != nil && opts.Stop(next) {
				return resp, nil
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if req, err = http.NewRequestWithContext(ctx, http.MethodGet, next.String(), nil); err != nil {
				return nil, fmt.Errorf("emulator browser: %w", err)
			}
			continue
		}
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			return resp, nil
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("emulator browser: read %s: %w", req.URL, err)
		}
		form := formRe.FindSubmatch(body)
		if form == nil {
			// Not an emulator page: the end of the journey.
			resp.Body = io.NopCloser(bytes.NewReader(body))
			return resp, nil
		}
		next, err := fillForm(ctx, req.URL, form, opts)
		if err != nil {
			return nil, err
		}
		req = next
	}
	return nil, errors.New("emulator browser: too many steps")
}

// fillForm builds the submission of an emulator page's form.
func fillForm(ctx context.Context, page *url.URL, form [][]byte, opts BrowseOptions) (*http.Request, error) {
	attrs := string(form[1]) + string(form[3])
	action := page.String()
	if m := actionRe.FindStringSubmatch(attrs); m != nil {
		u, err := page.Parse(html.UnescapeString(m[1]))
		if err != nil {
			return nil, fmt.Errorf("emulator browser: bad form action: %w", err)
		}
		action = u.String()
	}
	vals := url.Values{}
	var accounts []string
	checked := ""
	for _, in := range inputRe.FindAll(form[4], -1) {
		a := map[string]string{}
		for _, m := range attrRe.FindAllStringSubmatch(string(in), -1) {
			a[m[1]] = html.UnescapeString(m[2])
			if m[1] == "checked" {
				a["checked"] = "yes"
			}
		}
		switch a["type"] {
		case "hidden":
			vals.Set(a["name"], a["value"])
		case "radio":
			if a["name"] == "username" {
				accounts = append(accounts, a["value"])
				if a["checked"] != "" {
					checked = a["value"]
				}
			}
		}
	}
	user := checked
	if opts.Username != "" {
		user = ""
		for _, acc := range accounts {
			if strings.EqualFold(acc, opts.Username) {
				user = acc
			}
		}
		if user == "" {
			return nil, fmt.Errorf("emulator browser: account %q is not offered on the %s page (offered: %s)", opts.Username, form[2], strings.Join(accounts, ", "))
		}
	}
	if user == "" && len(accounts) > 0 {
		user = accounts[0]
	}
	if user != "" {
		vals.Set("username", user)
	}
	if opts.Cancel {
		vals.Set("action", "cancel")
	} else {
		vals.Set("action", "accept")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, action, strings.NewReader(vals.Encode()))
	if err != nil {
		return nil, fmt.Errorf("emulator browser: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req, nil
}
