// Command clarion is Clarion's Microsoft Sentinel integration: one binary
// with the production server, a no-configuration demo, the Microsoft
// emulator, migrations and workspace administration.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/clarion/sentinel/internal/app"
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
  clarion version

Run "clarion COMMAND -h" for the flags of a command.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "clarion:", err)
		}
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
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
	log.Info("starting clarion", "version", version, "config", cfg.String())
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
