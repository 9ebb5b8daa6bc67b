package web_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/clarion/sentinel/internal/app"
	"github.com/clarion/sentinel/internal/config"
	"github.com/clarion/sentinel/internal/emulator"
	"github.com/clarion/sentinel/internal/integration"
	"github.com/clarion/sentinel/internal/store"
)

// The browser tests run Clarion (app.New: store, engine, API, web UI) and
// the Microsoft emulator on loopback, and drive a real headless Chromium
// with chromedp. Nothing leaves the machine: deep links to Microsoft's
// portals are checked, never followed.

const (
	userEmail    = "analyst@soc.example"
	userPassword = "correct horse battery staple"
	// stepTimeout bounds one browser step (a click and the page it leads to).
	stepTimeout = 30 * time.Second
)

// chromiumPath finds Chromium: CLARION_CHROMIUM, then the usual names.
func chromiumPath() (string, bool) {
	if p := os.Getenv("CLARION_CHROMIUM"); p != "" {
		return p, true
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, true
		}
	}
	return "", false
}

// skipper is the part of testing.TB that requireChromium uses.
type skipper interface {
	Helper()
	Skipf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// requireChromium returns Chromium's path; without one, the test fails
// under CI=true (CI must not silently skip the UI tests) and is skipped
// with a clear message otherwise.
func requireChromium(t skipper, lookup func() (string, bool), ci string) string {
	t.Helper()
	p, ok := lookup()
	if ok {
		return p
	}
	const msg = "Chromium not found (looked for CLARION_CHROMIUM, chromium, chromium-browser, google-chrome): " +
		"install it (Debian: apt-get install chromium) to run the browser tests of the web UI"
	if ci == "true" {
		t.Fatalf("%s; CI=true, so this is a failure, not a skip", msg)
	} else {
		t.Skipf("%s", msg)
	}
	return ""
}

// env is one Clarion, one emulator and one browser, for one test.
type env struct {
	t           *testing.T
	app         *app.App
	emu         *emulator.Emulator
	url         string
	workspaceID string
	tab         context.Context // the browser tab, without a deadline
	logs        *syncBuffer
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func setup(t *testing.T) *env {
	t.Helper()
	chromium := requireChromium(t, chromiumPath, os.Getenv("CI"))
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	emuCfg := emulator.DefaultConfig()
	emuCfg.Logger = log.With("component", "emulator")
	emu, err := emulator.New(emuCfg)
	if err != nil {
		t.Fatal(err)
	}
	emuSrv := httptest.NewServer(emu.Handler())
	t.Cleanup(emuSrv.Close)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Defaults()
	cfg.Addr = ln.Addr().String()
	cfg.DataDir = t.TempDir()
	cfg.EntraAuthority = emuSrv.URL
	cfg.SentinelMCPURL = emuSrv.URL + "/mcp"
	cfg.ClientID, cfg.ClientSecret = emuCfg.ClientID, emuCfg.ClientSecret
	cfg.PollInterval = time.Second
	if err := cfg.Finish(); err != nil {
		t.Fatal(err)
	}
	a, err := app.New(t.Context(), cfg, log, app.Options{AutoMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	w, _, err := a.CreateWorkspace(t.Context(), "SOC")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Auth.CreateUser(t.Context(), w.ID, userEmail, userPassword); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx, ln) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("clarion: %v", err)
		}
		if t.Failed() {
			t.Logf("clarion and emulator logs:\n%s", logs.String())
		}
	})

	// The flags keep Chromium off the network: on a closed network its
	// background services (updates, sync, QUIC probes) make it hang.
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	tab, cancelTab := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancelTab(); cancelAlloc() }) // before Clarion stops: ends the alert streams
	if err := chromedp.Do(tab); err != nil {         // starts the browser, with no deadline
		t.Fatalf("start Chromium: %v", err)
	}
	return &env{t: t, app: a, emu: emu, url: cfg.PublicURL, workspaceID: w.ID, tab: tab, logs: logs}
}

// do runs browser steps with a deadline.
func (e *env) do(steps ...chromedp.Action[chromedp.Void]) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.tab, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		e.shot("failure")
		e.t.Fatalf("browser: %v (at %s)", err, e.location())
	}
}

// run runs one browser action that returns a value, with a deadline.
func run[T any](e *env, a chromedp.Action[T]) T {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.tab, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		e.shot("failure")
		e.t.Fatalf("browser: %v (at %s)", err, e.location())
	}
	return v
}

func (e *env) location() string {
	ctx, cancel := context.WithTimeout(e.tab, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	return loc
}

// text is the visible text of the first element matching a CSS selector.
func (e *env) text(sel string) string {
	e.t.Helper()
	return run(e, chromedp.Text(chromedp.CSS(sel)))
}

// js evaluates an expression in the page.
func js[T any](e *env, expr string) T {
	e.t.Helper()
	return run(e, chromedp.Evaluate[T](expr))
}

// open navigates to a Clarion path and waits for sel.
func (e *env) open(path, sel string) {
	e.t.Helper()
	e.do(chromedp.Navigate(e.url+path), chromedp.WaitVisible(chromedp.CSS(sel)))
}

// click clicks sel, which leads to another page, and waits for next on
// that page. The current document is marked first, so that an element of
// the same id on the page being left is never mistaken for the new one.
func (e *env) click(sel, next string) {
	e.t.Helper()
	e.do(chromedp.Evaluate[chromedp.Void](`document.documentElement.dataset.left = "1"`),
		chromedp.Click(chromedp.CSS(sel)),
		chromedp.WaitVisible(chromedp.CSS("html:not([data-left]) "+next)))
}

// tap clicks sel, which changes the page in place, and waits for next.
func (e *env) tap(sel, next string) {
	e.t.Helper()
	e.do(chromedp.Click(chromedp.CSS(sel)), chromedp.WaitVisible(chromedp.CSS(next)))
}

// fill replaces the value of a text field, as a person typing.
func (e *env) fill(sel, value string) {
	e.t.Helper()
	e.do(chromedp.WaitVisible(chromedp.CSS(sel)),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector(%q).value = ""`, sel)),
		chromedp.SendKeys(chromedp.CSS(sel), value))
}

func clickCSS(sel string) chromedp.Action[chromedp.Void] { return chromedp.Click(chromedp.CSS(sel)) }

func waitVisible(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.WaitVisible(chromedp.CSS(sel))
}

// waitAny waits until one of the selectors matches a visible element.
func waitAny(sels ...string) chromedp.Action[chromedp.Void] {
	return chromedp.WaitVisible(chromedp.CSS(strings.Join(sels, ", ")))
}

// artifacts is test-artifacts/ at the repository root (git-ignored).
var artifacts = sync.OnceValues(func() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the test's directory")
		}
		dir = parent
	}
	out := filepath.Join(dir, "test-artifacts", "web")
	return out, os.MkdirAll(out, 0o755)
})

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// shot saves a full-page PNG screenshot as test-artifacts/web/<Test>-<name>.png.
func (e *env) shot(name string) {
	e.t.Helper()
	dir, err := artifacts()
	if err != nil {
		e.t.Errorf("screenshot folder: %v", err)
		return
	}
	ctx, cancel := context.WithTimeout(e.tab, stepTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		e.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	file := filepath.Join(dir, unsafeName.ReplaceAllString(e.t.Name()+"-"+name, "_")+".png")
	if err := os.WriteFile(file, png, 0o644); err != nil {
		e.t.Errorf("screenshot %s: %v", name, err)
	}
}

// signIn signs the test's user in through the sign-in page.
func (e *env) signIn() {
	e.t.Helper()
	e.open("/login", "#email")
	e.fill("#email", userEmail)
	e.fill("#password", userPassword)
	e.click("#sign-in", "#signed-in-as")
}

// connect connects Sentinel by clicking through Clarion's button and the
// emulator's consent and sign-in pages, as an Entra admin would; button is
// the Clarion button to start with (#connect or #reconnect).
func (e *env) connect(button string) {
	e.t.Helper()
	e.click(button, `form[data-emulator-form="consent"]`)
	e.click("#accept", `form[data-emulator-form="signin"]`)
	e.click("#accept", "#done-connected")
}

// connected signs in and connects Sentinel, from the Sentinel page.
func (e *env) connected() {
	e.t.Helper()
	e.signIn()
	e.open("/integrations/sentinel", "#connect")
	e.connect("#connect")
}

// addMonitor adds a monitor through the service, for tests about other
// pages (TestAddMonitorOnEachTab adds them through the form).
func (e *env) addMonitor(name, workspaceID string) store.Monitor {
	e.t.Helper()
	src := store.SourceSIEM
	m, err := e.app.Integration.CreateMonitor(e.t.Context(), e.workspaceID, integration.MonitorInput{
		Name: &name, Source: &src, SentinelWorkspaceID: &workspaceID})
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

// noInjection asserts that nothing injected through incident or monitor
// text exists in the page: no element or attribute from it, no script but
// Clarion's own file, and no script ran.
func (e *env) noInjection(where string) {
	e.t.Helper()
	got := js[string](e, `(() => {
		const bad = [];
		if (document.querySelector('#injected, #injected-desc, #injected-name, img[src="x"], svg, iframe, object, embed, b#bold')) bad.push('injected element');
		for (const s of document.scripts) if (!/^\/static\/app\.js\?v=[0-9a-f]+$/.test(s.getAttribute('src') || '')) bad.push('script: ' + s.outerHTML.slice(0, 80));
		for (const el of document.querySelectorAll('*')) for (const a of el.attributes) if (a.name.startsWith('on')) bad.push('handler ' + a.name + ' on ' + el.tagName);
		if (window.__xss !== undefined) bad.push('script ran: ' + window.__xss);
		return bad.join('; ');
	})()`)
	if got != "" {
		e.shot("injection-" + where)
		e.t.Fatalf("%s: injected markup is live: %s", where, got)
	}
}

// hostile is text that would run script or add elements if it were ever
// rendered as HTML instead of text.
const (
	hostileTitle       = `Phish <img src=x onerror="window.__xss='img'"><script>window.__xss='script'</script> & "quotes"`
	hostileDescription = `<b id="injected-desc">bold</b><svg onload="window.__xss='svg'"></svg></td></tr><tr id="injected"><td>row</td></tr> <iframe src="javascript:window.__xss='iframe'"></iframe>`
	hostileMonitor     = `<i id="injected-name" onmouseover="window.__xss='name'">EU</i>`
)

// getOK fetches a Clarion path without a browser (for headers and cookies).
func getOK(t *testing.T, client *http.Client, u string) *http.Response {
	t.Helper()
	resp, err := client.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", u, resp.StatusCode)
	}
	return resp
}

// contains fails the test unless s contains want.
func contains(t *testing.T, what, s, want string) {
	t.Helper()
	if !strings.Contains(s, want) {
		t.Fatalf("%s = %q, want it to contain %q", what, s, want)
	}
}

func mustEqual[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}
