package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", for the bench's own schema

	"github.com/clarion/sentinel/internal/app"
	"github.com/clarion/sentinel/internal/demo"
	"github.com/clarion/sentinel/internal/emulator"
	"github.com/clarion/sentinel/internal/monitor"
	"github.com/clarion/sentinel/internal/store"
)

// StoreResult is everything measured on one store.
type StoreResult struct {
	Name      string        // SQLite or PostgreSQL
	Connect   time.Duration // connecting every tenant through the consent flow
	Connected int
	Tools     ToolResult
	Levels    []LevelResult
	Latency   LatencyResult
	Tokens    TokenResult
	Burst     BurstResult
}

// database is a store to measure: its DSNs for the scale run and the burst
// run (two fresh databases of the same engine), and how to drop them.
type database struct {
	name         string
	dsnA, dsnB   string // scale, burst
	dsnC         string // tokens
	dirA, dirB   string
	dirC         string
	cleanup      func() error
	describeSize string
}

func prepareDatabase(ctx context.Context, spec string) (*database, error) {
	dir, err := os.MkdirTemp("", "clarion-bench-")
	if err != nil {
		return nil, err
	}
	d := &database{dirA: filepath.Join(dir, "scale"), dirB: filepath.Join(dir, "burst"), dirC: filepath.Join(dir, "tokens")}
	for _, p := range []string{d.dirA, d.dirB, d.dirC} {
		if err := os.MkdirAll(p, 0o700); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	rmDir := func() error { return os.RemoveAll(dir) }
	if spec == "" || spec == "sqlite" {
		d.name = "SQLite"
		d.dsnA = "sqlite:" + filepath.Join(d.dirA, "clarion.db")
		d.dsnB = "sqlite:" + filepath.Join(d.dirB, "clarion.db")
		d.dsnC = "sqlite:" + filepath.Join(d.dirC, "clarion.db")
		d.cleanup = rmDir
		return d, nil
	}
	if !strings.HasPrefix(spec, "postgres://") && !strings.HasPrefix(spec, "postgresql://") {
		rmDir()
		return nil, fmt.Errorf("database-url: %q is neither sqlite nor a postgres:// URL", redact(spec))
	}
	d.name = "PostgreSQL"
	var r [6]byte
	_, _ = rand.Read(r[:])
	base := "clarion_bench_" + hex.EncodeToString(r[:])
	schemas := []string{base + "_scale", base + "_burst", base + "_tokens"}
	admin := func(stmt string) error {
		db, err := sql.Open("pgx", spec)
		if err != nil {
			return err
		}
		defer db.Close()
		_, err = db.ExecContext(ctx, stmt)
		return err
	}
	for _, s := range schemas {
		if err := admin("CREATE SCHEMA " + s); err != nil {
			rmDir()
			return nil, fmt.Errorf("bench: create schema on %s: %w", redact(spec), err)
		}
	}
	dsn := func(schema string) (string, error) {
		u, err := url.Parse(spec)
		if err != nil {
			return "", err
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	d.cleanup = func() error {
		var errs []error
		for _, s := range schemas {
			errs = append(errs, admin("DROP SCHEMA "+s+" CASCADE"))
		}
		return errors.Join(append(errs, rmDir())...)
	}
	if d.dsnA, err = dsn(schemas[0]); err == nil {
		if d.dsnB, err = dsn(schemas[1]); err == nil {
			d.dsnC, err = dsn(schemas[2])
		}
	}
	if err != nil {
		d.cleanup()
		return nil, err
	}
	return d, nil
}

// redact hides the password of a URL.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxx")
	}
	return u.String()
}

func runStore(ctx context.Context, o Options, emu, tokEmu *emuProcess, spec string) (*StoreResult, error) {
	db, err := prepareDatabase(ctx, spec)
	if err != nil {
		return nil, err
	}
	res := &StoreResult{Name: db.name}
	defer func() {
		if err := db.cleanup(); err != nil {
			fmt.Fprintf(o.Progress, "bench: clean up %s: %v\n", db.name, err)
		}
	}()
	progress(o, "%s: scale, latency and tools", db.name)
	if err := runScale(ctx, o, emu, db, res); err != nil {
		return res, fmt.Errorf("bench: %s: %w", db.name, err)
	}
	progress(o, "%s: token refreshes: %d connections for %s", db.name, o.TokenTenants, o.TokenRun)
	if err := runTokens(ctx, o, tokEmu, db, res); err != nil {
		return res, fmt.Errorf("bench: %s: tokens: %w", db.name, err)
	}
	progress(o, "%s: burst of %d incidents", db.name, o.Burst)
	if err := runBurst(ctx, o, emu, db, res); err != nil {
		return res, fmt.Errorf("bench: %s: burst: %w", db.name, err)
	}
	return res, nil
}

// warmTenants does what each connection's first poll would: fetch its
// Sentinel platform token and open its MCP session (list_sentinel_workspaces
// through app.Upstream), so that the scale windows measure a node that has
// been running, not first contacts.
func warmTenants(ctx context.Context, o Options, c *clarion, tenants []tenantWS) error {
	up := &app.Upstream{Connections: c.app.Connections, Client: c.app.Sentinel}
	var (
		next   atomic.Int64
		wg     sync.WaitGroup
		mu     sync.Mutex
		errOne error
	)
	for range o.ConnectWorkers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(tenants) || ctx.Err() != nil {
					return
				}
				if _, err := up.ListWorkspaces(ctx, tenants[i].id); err != nil {
					mu.Lock()
					errOne = errors.Join(errOne, fmt.Errorf("warm tenant %d: %w", i, err))
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return errOne
}

// tenantWS is a connected Clarion workspace (one per bench tenant).
type tenantWS struct {
	id, token string
}

// connectTenants creates one Clarion workspace per tenant in [from, to)
// and connects each through the consent flow (demo.Connect: Clarion's
// connect URL, the emulator's consent and sign-in pages, the callback),
// several at a time.
func connectTenants(ctx context.Context, o Options, c *clarion, from, to int) ([]tenantWS, error) {
	out := make([]tenantWS, to-from)
	var (
		next   atomic.Int64
		wg     sync.WaitGroup
		mu     sync.Mutex
		errOne error
	)
	next.Store(int64(from))
	for range o.ConnectWorkers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= to || ctx.Err() != nil {
					return
				}
				w, tok, err := c.app.CreateWorkspace(ctx, fmt.Sprintf("bench tenant %d", i))
				if err == nil {
					err = demo.Connect(ctx, c.url, tok, adminUsername(i))
				}
				if err != nil {
					mu.Lock()
					errOne = errors.Join(errOne, fmt.Errorf("connect tenant %d: %w", i, err))
					mu.Unlock()
					return
				}
				out[i-from] = tenantWS{id: w.ID, token: tok}
			}
		})
	}
	wg.Wait()
	return out, errOne
}

// createMonitors adds MonitorsPerTenant monitors to each workspace (at most
// total), straight into the store: two per Sentinel workspace, one without
// filter and one for high and critical only.
func createMonitors(ctx context.Context, o Options, c *clarion, tenants []tenantWS, firstTenant, total int, interval time.Duration) ([]store.Monitor, error) {
	now := time.Now().UTC()
	var ms []store.Monitor
	for ti, w := range tenants {
		for k := range o.MonitorsPerTenant {
			if len(ms) >= total {
				break
			}
			m := store.Monitor{ID: store.NewID(), WorkspaceID: w.id, Name: fmt.Sprintf("bench %d", k),
				SourceKind: store.SourceSIEM, SentinelWorkspaceID: workspaceID(firstTenant+ti, k%o.WorkspacesPerTenant),
				Enabled: true, CreatedAt: now, UpdatedAt: now, Health: store.Health{Status: store.HealthPending}}
			if k >= o.WorkspacesPerTenant {
				m.Severities = []string{"critical", "high"}
			}
			// First poll on the feed's own slot, as on a node that has been
			// running, so that each polls exactly once in any window of one
			// interval.
			m.NextPollAt = monitor.NextSlot(interval, m, now)
			ms = append(ms, m)
		}
	}
	var (
		next   atomic.Int64
		wg     sync.WaitGroup
		mu     sync.Mutex
		errOne error
	)
	for range 4 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(ms) || ctx.Err() != nil {
					return
				}
				if err := c.app.Store.CreateMonitor(ctx, ms[i]); err != nil {
					mu.Lock()
					errOne = errors.Join(errOne, err)
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return ms, errOne
}

// emuStats reads the emulator's request counts.
func emuStats(ctx context.Context, emuURL string) (emulator.Stats, error) {
	var st emulator.Stats
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, emuURL+"/_emulator/stats", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("emulator stats: HTTP %d", resp.StatusCode)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// deleteStats resets the emulator's request counts.
func deleteStats(ctx context.Context, emuURL string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodDelete, emuURL+"/_emulator/stats", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("reset emulator stats: HTTP %d", resp.StatusCode)
	}
	return nil
}

// requestTotals sums the requests Clarion made to Microsoft: every HTTP
// request, the query_lake calls, the token requests.
func requestTotals(st emulator.Stats) (requests, queries, tokens int) {
	for _, t := range st.Tenants {
		requests += t.Total.Count
		queries += t.Tools[emulator.ToolQueryLake].Count
		tokens += t.Endpoints[emulator.EndpointToken].Count
	}
	return requests, queries, tokens
}

// postJSON posts v and fails on a status other than want.
func postJSON(ctx context.Context, u string, v any, want int) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != want {
		return fmt.Errorf("POST %s: HTTP %d: %s", u, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}

// sleepUntil waits until t or ctx's end.
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

// waitFor polls cond every step until it holds, the deadline passes
// (false) or ctx ends.
func waitFor(ctx context.Context, deadline time.Time, step time.Duration, cond func() bool) (bool, error) {
	for {
		if cond() {
			return true, nil
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		if err := sleepUntil(ctx, time.Now().Add(step)); err != nil {
			return false, err
		}
	}
}
