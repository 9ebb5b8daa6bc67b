package emulator

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"
)

type fileList []string

func (f *fileList) String() string     { return fmt.Sprint(*f) }
func (f *fileList) Set(s string) error { *f = append(*f, s); return nil }

// Main runs `clarion emulator`: the Microsoft stand-in alone, seeded with
// DefaultConfig's tenants, the demo incidents (or the given files), until
// ctx ends. Never used in production.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("clarion emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8081", "listen address (loopback only: this is a test double)")
	var files fileList
	fs.Var(&files, "incidents", "incident file to load into Contoso's first workspace (ARM pages, Log Analytics rows, Graph incidents); repeatable")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg := DefaultConfig()
	cfg.Logger = log
	e, err := New(cfg)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	if len(files) == 0 {
		if _, err := SeedDemoIncidents(e, ContosoTenantID, ContosoWorkspaceID, now); err != nil {
			return err
		}
	}
	for _, f := range files {
		rows, err := LoadIncidents(f)
		if err != nil {
			return fmt.Errorf("incidents: %s: %w", f, err)
		}
		if _, err := e.AddIncidents(ContosoTenantID, ContosoWorkspaceID, rows, time.Time{}); err != nil {
			return fmt.Errorf("incidents: %s: %w", f, err)
		}
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: e.Handler(), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "Microsoft emulator on http://%s\n  client id %s\n  tenant %s (%s), workspace %s\n  control API http://%s/_emulator/\n",
		ln.Addr(), cfg.ClientID, ContosoTenantID, ContosoTenantName, ContosoWorkspaceID, ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		// End the MCP sessions first: their event streams would hold
		// Shutdown until its deadline.
		_ = e.Close()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
}
