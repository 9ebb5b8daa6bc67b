package app_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clarion/sentinel/internal/app"
	"github.com/clarion/sentinel/internal/config"
	"github.com/clarion/sentinel/internal/emulator"
	"github.com/clarion/sentinel/internal/store"
	"github.com/clarion/sentinel/internal/store/storetest"
	"github.com/clarion/sentinel/internal/tools"
)

// TestRunWritesEveryToolCallsAuditBeforeItStops: tool calls answered right
// before shutdown are all in the audit once Run has returned (records are
// written after the answer, so shutdown must flush them before the store
// closes), with their secrets redacted. On SQLite and on PostgreSQL.
func TestRunWritesEveryToolCallsAuditBeforeItStops(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		dsn  func(t *testing.T) string
	}{
		{"sqlite", func(t *testing.T) string { return storetest.SQLiteDSN(t) }},
		{"postgres", func(t *testing.T) string { return storetest.PostgresDSN(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dsn := tc.dsn(t)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			cfg := config.Defaults()
			cfg.Addr = ln.Addr().String()
			cfg.DataDir = t.TempDir()
			cfg.DatabaseURL = dsn
			cfg.EntraAuthority = "https://login.microsoftonline.example"
			cfg.ClientID, cfg.ClientSecret = emulator.DefaultClientID, emulator.DefaultClientSecret
			if err := cfg.Finish(); err != nil {
				t.Fatal(err)
			}
			a, err := app.New(t.Context(), cfg, slog.New(slog.DiscardHandler), app.Options{AutoMigrate: true})
			if err != nil {
				t.Fatal(err)
			}
			w, tok, err := a.CreateWorkspace(t.Context(), "SOC")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := a.Tools.CreateSkill(t.Context(), w.ID, "lake", "", []string{tools.ToolsetDataLake}); err != nil {
				t.Fatal(err)
			}
			ctx, stop := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- a.Run(ctx, ln) }()

			// Not connected: each call is answered (not_connected) without
			// Microsoft, and audited.
			secret := "AKx9vQ7pLm2ZtR4sW8yB3nC6dF1gH5jK0uE"
			const n = 60
			var wg sync.WaitGroup
			for range n {
				wg.Go(func() {
					body := `{"query":"SigninLogs | where CorrelationId == '` + secret + `'","workspaceId":"` + emulator.ContosoWorkspaceID + `"}`
					req, _ := http.NewRequest("POST", cfg.PublicURL+"/api/v1/tools/query_lake?skill=lake", strings.NewReader(body))
					req.Header.Set("Authorization", "Bearer "+tok)
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					resp.Body.Close()
					if resp.StatusCode != http.StatusConflict {
						t.Errorf("call: HTTP %d, want 409 not_connected", resp.StatusCode)
					}
				})
			}
			wg.Wait()
			stop()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("Run did not return")
			}

			st, err := store.Open(t.Context(), dsn, store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			calls, err := st.ListToolCalls(t.Context(), w.ID, store.ToolCallFilter{Limit: store.MaxToolCallLimit})
			if err != nil {
				t.Fatal(err)
			}
			if len(calls) != n {
				t.Fatalf("%d audit records after Run returned, want %d", len(calls), n)
			}
			for _, c := range calls {
				if c.Outcome != tools.CodeNotConnected || strings.Contains(c.Arguments, secret) || !strings.Contains(c.Arguments, "[redacted]") {
					t.Fatalf("record %+v", c)
				}
			}
		})
	}
}
