// Package samples locates the real public Microsoft payloads that the tests
// read (../shared/data/microsoft beside the repository). They are never
// copied into the repository; see that folder's SOURCES.md.
package samples

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// EnvDir overrides where the samples are (a folder holding the JSON files).
const EnvDir = "CLARION_SAMPLES_DIR"

// Dir returns the samples folder, or "" when it cannot be found.
func Dir() string {
	if d := os.Getenv(EnvDir); d != "" {
		return d
	}
	// This file is <repo>/internal/samples/samples.go; the samples sit at
	// <repo>/../shared/data/microsoft.
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return ""
	}
	d := filepath.Join(filepath.Dir(file), "..", "..", "..", "shared", "data", "microsoft")
	if st, err := os.Stat(d); err == nil && st.IsDir() {
		return d
	}
	return ""
}

// Path returns the path of one sample file for a test. When the samples are
// missing the test fails under CI (CI=true) and is skipped, saying why,
// elsewhere: a CI run must never pass without reading the real payloads.
func Path(t testing.TB, name string) string {
	t.Helper()
	d := Dir()
	if d == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("samples: ../shared/data/microsoft not found (set %s)", EnvDir)
		}
		t.Skipf("samples: ../shared/data/microsoft not found (set %s); skipped outside CI", EnvDir)
	}
	p := filepath.Join(d, name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("samples: %v", err)
	}
	return p
}
