package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/clarion/sentinel/internal/emulator"
)

// The emulator runs in a child process of the bench (the same executable,
// re-run with envRole set), so that Clarion's CPU and memory — this
// process's — are measured apart from Microsoft's stand-in.
const (
	envRole   = "CLARION_BENCH_ROLE"
	envConfig = "CLARION_BENCH_EMULATOR"
	roleEmu   = "emulator"
	readyLine = "clarion-bench-emulator "
)

// IsChild reports whether this process was started by the bench as its
// emulator child. A test binary that runs the bench calls it from TestMain
// and then RunChild (see bench_test.go); `clarion bench` does it by itself.
func IsChild() bool { return os.Getenv(envRole) == roleEmu }

// RunChild runs the emulator child until its stdin closes (the bench ended
// or died) and returns the process exit code.
func RunChild() int {
	if err := runEmulatorChild(context.Background(), os.Getenv(envConfig), os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "clarion bench emulator:", err)
		return 1
	}
	return 0
}

// emuConfig is what the driver tells the emulator child.
type emuConfig struct {
	Tenants             int           `json:"tenants"`
	WorkspacesPerTenant int           `json:"workspaces_per_tenant"`
	AccessTokenTTL      time.Duration `json:"access_token_ttl"`
	BurstRows           int           `json:"burst_rows"`
}

func (c emuConfig) emulatorConfig() emulator.Config {
	cfg := emulator.DefaultConfig()
	cfg.Tenants = nil
	for i := range c.Tenants {
		t := emulator.Tenant{
			ID: tenantID(i), Name: fmt.Sprintf("Bench tenant %d", i),
			Users:             []emulator.User{{OID: adminOID(i), Username: adminUsername(i), DisplayName: fmt.Sprintf("Bench admin %d", i)}},
			DataLakeOnboarded: true, DefenderMCPProvisioned: true,
		}
		for j := range c.WorkspacesPerTenant {
			t.Workspaces = append(t.Workspaces, emulator.Workspace{ID: workspaceID(i, j), Name: fmt.Sprintf("bench-%d-%d", i, j)})
		}
		cfg.Tenants = append(cfg.Tenants, t)
	}
	cfg.AccessTokenTTL = c.AccessTokenTTL
	cfg.Logger = slog.New(slog.DiscardHandler)
	return cfg
}

func runEmulatorChild(ctx context.Context, raw string, stdin io.Reader, stdout io.Writer) error {
	var c emuConfig
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	emu, err := emulator.New(c.emulatorConfig())
	if err != nil {
		return err
	}
	lake, err := newLake(c.BurstRows)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/burst/", http.StripPrefix("/burst", lake.handler()))
	mux.Handle("/", emu.Handler())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "%shttp://%s\n", readyLine, ln.Addr())

	// The driver holds our stdin open for as long as it lives.
	gone := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, stdin)
		close(gone)
	}()
	select {
	case <-gone:
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	_ = emu.Close()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	return nil
}

// emuProcess is the running emulator child.
type emuProcess struct {
	URL   string
	cmd   *exec.Cmd
	stdin io.Closer
}

// startEmulator starts the emulator child and waits until it listens.
func startEmulator(ctx context.Context, c emuConfig) (*emuProcess, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("bench: find own executable: %w", err)
	}
	raw, _ := json.Marshal(c)
	cmd := exec.Command(exe, "bench")
	cmd.Env = append(os.Environ(), envRole+"="+roleEmu, envConfig+"="+string(raw))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start emulator: %w", err)
	}
	p := &emuProcess{cmd: cmd, stdin: stdin}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), readyLine); ok {
				lines <- u
			}
		}
		close(lines)
	}()
	select {
	case u, ok := <-lines:
		if !ok {
			p.stop()
			return nil, errors.New("bench: the emulator child exited before it listened")
		}
		p.URL = u
		return p, nil
	case <-time.After(2 * time.Minute):
		p.stop()
		return nil, errors.New("bench: the emulator child did not listen within 2 minutes")
	case <-ctx.Done():
		p.stop()
		return nil, ctx.Err()
	}
}

// Pid is the child's process id.
func (p *emuProcess) Pid() int { return p.cmd.Process.Pid }

// stop closes the child's stdin, which ends it, and waits for it (killing
// it after 10 s).
func (p *emuProcess) stop() {
	_ = p.stdin.Close()
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}
