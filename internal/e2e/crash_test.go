package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clarion/sentinel/internal/demo"
	"github.com/clarion/sentinel/internal/emulator"
	"github.com/clarion/sentinel/internal/proctest"
	"github.com/clarion/sentinel/internal/store"
)

// child is one `clarion serve` process.
type child struct {
	cmd  *exec.Cmd
	logs *bytes.Buffer
}

func startServe(t *testing.T, bin string, env []string, addr string) *child {
	t.Helper()
	cmd := exec.Command(bin, "serve")
	cmd.Env = env
	logs := &bytes.Buffer{}
	cmd.Stderr = &lockedWriter{w: logs}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, logs: logs}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return c
			}
		}
		if time.Now().After(deadline) {
			c.cmd.Process.Kill()
			c.cmd.Wait()
			t.Fatalf("clarion serve did not become ready:\n%s", logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *child) kill() {
	c.cmd.Process.Signal(syscall.SIGKILL)
	c.cmd.Wait()
}

func (c *child) stop(t *testing.T) {
	c.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		c.kill()
		t.Fatal("clarion serve did not stop on SIGTERM within 20 s")
	}
}

// TestCrashSafetyKilledAtRandomMoments: a `clarion serve` child is killed
// with SIGKILL at random moments, 50 times, while a few thousand incidents
// arrive and are ingested; after the last restart every incident is an
// alert exactly once (issue 3, crash safety).
func TestCrashSafetyKilledAtRandomMoments(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: skipped with -short")
	}
	t.Parallel()
	bin, err := proctest.BuildClarion(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ecfg := emulator.DefaultConfig()
	emu, err := emulator.New(ecfg)
	if err != nil {
		t.Fatal(err)
	}
	emuSrv := httptest.NewServer(emu.Handler())
	t.Cleanup(emuSrv.Close)

	dir := t.TempDir()
	addr := proctest.FreeAddr(t)
	env := append(os.Environ(),
		"CLARION_ADDR="+addr,
		"CLARION_DATA_DIR="+dir,
		"CLARION_ENTRA_AUTHORITY="+emuSrv.URL,
		"CLARION_SENTINEL_MCP_URL="+emuSrv.URL+"/mcp",
		"CLARION_CLIENT_ID="+ecfg.ClientID,
		"CLARION_CLIENT_SECRET="+ecfg.ClientSecret,
		"CLARION_POLL_INTERVAL=1s",
		"CLARION_PAGE_SIZE=20",
		"CLARION_MIGRATE=true",
		"CLARION_REPLICA_ID=crash-test",
		"CLARION_LOG_LEVEL=warn",
	)
	out, err := func() ([]byte, error) {
		cmd := exec.Command(bin, "workspace", "create", "Crash SOC")
		cmd.Env = env
		return cmd.Output()
	}()
	if err != nil {
		t.Fatalf("workspace create: %v", err)
	}
	var token, wsID string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "api token (shown once): "); ok {
			token = v
		}
		if strings.HasPrefix(sc.Text(), "workspace ") {
			f := strings.Fields(sc.Text())
			wsID = strings.Trim(f[len(f)-1], "()")
		}
	}
	if token == "" || wsID == "" {
		t.Fatalf("no token or workspace id in %q", out)
	}
	base := "http://" + addr
	c := startServe(t, bin, env, addr)
	if err := demo.Connect(t.Context(), base, token, ""); err != nil {
		c.kill()
		t.Fatal(err)
	}
	if code := doAs(t, base, token, "POST", "/api/v1/monitors", map[string]any{"name": "crash", "workspace_id": emulator.ContosoWorkspaceID}, nil); code != 201 {
		c.kill()
		t.Fatalf("create monitor: HTTP %d", code)
	}
	c.kill()

	const total, kills = 3000, 50
	start := time.Now().UTC().Add(time.Second)
	want := make(map[string]bool, total)
	added := 0
	addBatch := func(n int) {
		rows := make([]emulator.Row, 0, n)
		for ; n > 0 && added < total; n-- {
			name := fmt.Sprintf("c0000000-0000-4000-8000-%012d", added)
			// Some share a creation time, as real incidents do.
			created := start.Add(time.Duration(added/3) * time.Millisecond)
			rows = append(rows, emulator.Row{"IncidentName": name, "Title": "crash incident " + name, "Severity": "High",
				"Status": "New", "CreatedTime": created, "LastModifiedTime": created})
			want[name] = true
			added++
		}
		if _, err := emu.AddIncidents(emulator.ContosoTenantID, emulator.ContosoWorkspaceID, rows, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range kills {
		addBatch(total / kills)
		c := startServe(t, bin, env, addr)
		time.Sleep(time.Duration(50+rng.IntN(1200)) * time.Millisecond) // a random moment, not synchronisation
		c.kill()
		_ = i
	}
	addBatch(total)
	c = startServe(t, bin, env, addr)
	deadline := time.Now().Add(60 * time.Second)
	count := func() int {
		var n int
		var page struct {
			Alerts     []struct{} `json:"alerts"`
			NextCursor string     `json:"next_cursor"`
		}
		cursor := ""
		for {
			page.Alerts, page.NextCursor = nil, ""
			p := "/api/v1/alerts?limit=500"
			if cursor != "" {
				p += "&cursor=" + cursor
			}
			doAs(t, base, token, "GET", p, nil, &page)
			n += len(page.Alerts)
			if page.NextCursor == "" {
				return n
			}
			cursor = page.NextCursor
		}
	}
	for count() < total && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // two more poll intervals: nothing more may arrive
	c.stop(t)

	st, err := store.Open(context.Background(), filepath.Join(dir, "clarion.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	seen := map[string]int{}
	f := store.AlertFilter{Limit: 500}
	for {
		page, err := st.ListAlerts(context.Background(), wsID, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range page {
			seen[a.IncidentID]++
		}
		if len(page) < f.Limit {
			break
		}
		f.BeforeIngestedAt, f.BeforeID = page[len(page)-1].IngestedAt, page[len(page)-1].ID
	}
	missing, dup := 0, 0
	for name := range want {
		switch seen[name] {
		case 0:
			missing++
		case 1:
		default:
			dup++
		}
	}
	if missing != 0 || dup != 0 || len(seen) != total {
		t.Fatalf("after %d SIGKILLs: %d alerts for %d incidents, %d missing, %d duplicated", kills, len(seen), total, missing, dup)
	}
	t.Logf("%d incidents, %d SIGKILLs: every incident alerted exactly once", total, kills)
}
