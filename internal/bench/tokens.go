package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/clarion/sentinel/internal/store"
)

// runTokens measures token refreshes against an emulator whose access
// tokens live TokenLifetime: TokenTenants connections, each with two
// monitors on one Sentinel workspace polling every second, for TokenRun.
// Clarion uses a cached token until a minute before it ends, so a
// connection should refresh once per (lifetime − 1 min), however many
// monitors share it.
func runTokens(ctx context.Context, o Options, emu *emuProcess, db *database, res *StoreResult) error {
	c, err := startClarion(ctx, db.dsnC, db.dirC, emu.URL, emu.URL+"/mcp", time.Second, o.Logger)
	if err != nil {
		return err
	}
	defer c.close()
	if err := deleteStats(ctx, emu.URL); err != nil {
		return err
	}
	tenants, err := connectTenants(ctx, o, c, 0, o.TokenTenants)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	for i, w := range tenants {
		for k := range 2 {
			m := store.Monitor{ID: store.NewID(), WorkspaceID: w.id, Name: fmt.Sprintf("tokens %d", k), SourceKind: store.SourceSIEM,
				SentinelWorkspaceID: workspaceID(i, 0), Enabled: true, CreatedAt: now, UpdatedAt: now, NextPollAt: now,
				Health: store.Health{Status: store.HealthPending}}
			if err := c.app.Store.CreateMonitor(ctx, m); err != nil {
				return err
			}
		}
	}
	c.eng.Reload()
	if err := sleepUntil(ctx, now.Add(o.TokenRun)); err != nil {
		return err
	}
	c.stopEngine()
	st, err := emuStats(ctx, emu.URL)
	if err != nil {
		return err
	}
	scale := res.Tokens
	res.Tokens = tokenResult(st, o.TokenTenants, o.TokenLifetime)
	res.Tokens.Run = o.TokenRun
	res.Tokens.ScaleConnections, res.Tokens.ScaleRefreshes, res.Tokens.ScaleMax = scale.ScaleConnections, scale.ScaleRefreshes, scale.ScaleMax
	return nil
}
