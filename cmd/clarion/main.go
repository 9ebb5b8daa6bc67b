// Command clarion is Clarion's Microsoft Sentinel integration: one binary
// with the production server, a no-configuration demo, the Microsoft
// emulator, migrations and workspace administration.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/clarion/sentinel/internal/app"
	"github.com/clarion/sentinel/internal/auth"
	"github.com/clarion/sentinel/internal/bench"
	"github.com/clarion/sentinel/internal/config"
	"github.com/clarion/sentinel/internal/demo"
	"github.com/clarion/sentinel/internal/emulator"
	"github.com/clarion/sentinel/internal/store"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const usage = `clarion — Microsoft Sentinel integration for Clarion

Usage:
  clarion serve     [flags]   run the production server (points at Microsoft)
  clarion demo      [flags]   run everything locally with the Microsoft emulator
  clarion emulator  [flags]   run the Microsoft emulator alone
  clarion migrate   [flags]   apply database migrations
  clarion workspace create NAME [flags]  create a Clarion workspace and print its first API token
  clarion user add --workspace-id ID --email EMAIL [flags]
                              add a person who signs in to the web UI; the password
                              is read from stdin or CLARION_USER_PASSWORD
  clarion bench     [flags]   measure Clarion against the emulator (see BENCHMARKS.md)
  clarion version

Run "clarion COMMAND -h" for the flags of a command.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "clarion:", err)
		}
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return serve(ctx, rest, stderr)
	case "demo":
		return demo.Main(ctx, rest, stdout, stderr)
	case "emulator":
		return emulator.Main(ctx, rest, stdout, stderr)
	case "migrate":
		return migrate(ctx, rest, stdout, stderr)
	case "workspace":
		return workspace(ctx, rest, stdout, stderr)
	case "user":
		return user(ctx, rest, stdin, stdout, stderr)
	case "bench":
		return bench.Main(ctx, rest, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "clarion", version)
		return nil
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

// loadConfig parses flags over CLARION_* variables and validates.
func loadConfig(name string, args []string, stderr io.Writer) (config.Config, *flag.FlagSet, error) {
	cfg := config.Defaults()
	fs := flag.NewFlagSet("clarion "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := cfg.Register(fs, os.Getenv); err != nil {
		return cfg, fs, err
	}
	if err := fs.Parse(args); err != nil {
		return cfg, fs, err
	}
	return cfg, fs, cfg.Finish()
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, _, err := loadConfig("serve", args, stderr)
	if err != nil {
		return err
	}
	log := app.NewLogger(stderr, cfg.LogLevel, cfg.LogJSON)
	// The replica id names this process's leases in the database: with
	// several replicas, the log says which one is which.
	log.Info("starting clarion", "version", version, "replica_id", cfg.ReplicaID, "config", cfg.String())
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data-dir: %w", err)
	}
	a, err := app.New(ctx, cfg, log, app.Options{})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		a.Close()
		return fmt.Errorf("addr: %w", err)
	}
	log.Info("listening", "url", cfg.PublicURL)
	return a.Run(ctx, ln)
}

func migrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := config.Defaults()
	fs := flag.NewFlagSet("clarion migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := cfg.Register(fs, os.Getenv); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	dsn := cfg.DatabaseURL
	if dsn == "" {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return fmt.Errorf("data-dir: %w", err)
		}
		dsn = cfg.DataDir + "/clarion.db"
	}
	applied, err := store.Migrate(ctx, dsn)
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintln(stdout, "schema is up to date")
	}
	for _, m := range applied {
		fmt.Fprintln(stdout, "applied", m)
	}
	return nil
}

func workspace(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) < 2 || args[0] != "create" {
		return errors.New(`usage: clarion workspace create NAME [flags]`)
	}
	name := args[1]
	cfg, _, err := loadConfig("workspace create", args[2:], stderr)
	if err != nil {
		return err
	}
	log := app.NewLogger(stderr, cfg.LogLevel, cfg.LogJSON)
	a, err := app.New(ctx, cfg, log, app.Options{})
	if err != nil {
		return err
	}
	defer a.Close()
	w, tok, err := a.CreateWorkspace(ctx, name)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "workspace %s (%s)\napi token (shown once): %s\n", w.Name, w.ID, tok)
	return nil
}

// user adds a local account (a person who signs in to the web UI) to a
// Clarion workspace. The password comes from CLARION_USER_PASSWORD or the
// first line of stdin, never from a flag (flags show in process lists).
func user(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	const use = "usage: clarion user add --workspace-id ID --email EMAIL [flags] (password on stdin or in CLARION_USER_PASSWORD)"
	if len(args) < 1 || args[0] != "add" {
		return errors.New(use)
	}
	cfg := config.Defaults()
	fs := flag.NewFlagSet("clarion user add", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := cfg.Register(fs, os.Getenv); err != nil {
		return err
	}
	workspaceID := fs.String("workspace-id", "", "the Clarion workspace the person belongs to (required)")
	email := fs.String("email", "", "the person's email address, their sign-in name (required)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *workspaceID == "" || *email == "" {
		return errors.New("user add: --workspace-id and --email are required; " + use)
	}
	dsn := cfg.DatabaseURL
	if dsn == "" {
		dsn = filepath.Join(cfg.DataDir, "clarion.db")
	}
	st, err := store.Open(ctx, dsn, store.Options{})
	if err != nil {
		return fmt.Errorf("user add: %w", err)
	}
	defer st.Close()
	if _, err := st.GetWorkspace(ctx, *workspaceID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("user add: there is no workspace %q (clarion workspace create makes one)", *workspaceID)
		}
		return fmt.Errorf("user add: %w", err)
	}
	password, err := readPassword(stdin, stderr)
	if err != nil {
		return err
	}
	u, err := (&auth.Service{Store: st}).CreateUser(ctx, *workspaceID, *email, password)
	if err != nil {
		var fe *auth.FieldError
		if errors.As(err, &fe) { // one line per bad field: "email: …", "password: …"
			return fmt.Errorf("user add: %s", strings.ReplaceAll(err.Error(), "\n", "; "))
		}
		return fmt.Errorf("user add: %w", err)
	}
	fmt.Fprintf(stdout, "user %s (%s) added to workspace %s; they sign in at the web UI\n", u.Email, u.ID, u.WorkspaceID)
	return nil
}

// readPassword reads the new password from CLARION_USER_PASSWORD or the
// first line of stdin.
func readPassword(stdin io.Reader, stderr io.Writer) (string, error) {
	if p := os.Getenv("CLARION_USER_PASSWORD"); p != "" {
		return p, nil
	}
	if f, ok := stdin.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			fmt.Fprint(stderr, "Password (visible as you type; pipe it in or set CLARION_USER_PASSWORD to avoid that): ")
		}
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, auth.MaxPasswordLen+2)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("user add: read the password from stdin: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("user add: no password: give it on stdin or in CLARION_USER_PASSWORD")
	}
	return line, nil
}
