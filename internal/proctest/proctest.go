// Package proctest holds what tests that run `clarion` as a child process
// share: building the binary and picking a loopback address for it. Only
// tests import it.
package proctest

import (
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// BuildClarion compiles cmd/clarion into dir and returns the binary's path.
// It uses the go tool on PATH, else the one of the running toolchain.
func BuildClarion(dir string) (string, error) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(dir, "clarion")
	if out, err := exec.Command(goTool, "build", "-o", bin, "github.com/clarion/sentinel/cmd/clarion").CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %w\n%s", err, out)
	}
	return bin, nil
}

// FreeAddr returns a loopback address free at the time of the call, for a
// child process to listen on.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
