package secrets_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/clarion/sentinel/internal/secrets"
)

func setup(t *testing.T) *secrets.Box {
	t.Helper()
	box, err := secrets.NewBox(secrets.GenerateKey())
	if err != nil {
		t.Fatal(err)
	}
	return box
}

func TestSealOpenRoundTrip(t *testing.T) {
	t.Parallel()
	box := setup(t)
	tests := []struct {
		name           string
		plaintext, aad []byte
	}{
		{"refresh token bound to a workspace", []byte("0.AXEA-refresh-token"), []byte("workspace-1")},
		{"empty plaintext", []byte{}, []byte("workspace-1")},
		{"nil aad", []byte("secret"), nil},
		{"binary", []byte{0, 1, 2, 255, 0}, []byte{0}},
		{"large", bytes.Repeat([]byte("x"), 64<<10), []byte("w")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sealed := box.Seal(tc.plaintext, tc.aad)
			if sealed[0] != 1 {
				t.Fatalf("version byte = %d, want 1", sealed[0])
			}
			if want := 1 + 12 + len(tc.plaintext) + 16; len(sealed) != want {
				t.Fatalf("sealed length %d, want %d", len(sealed), want)
			}
			if len(tc.plaintext) > 8 && bytes.Contains(sealed, tc.plaintext[:8]) {
				t.Fatal("plaintext visible in the sealed value")
			}
			got, err := box.Open(sealed, tc.aad)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.plaintext) {
				t.Fatalf("Open = %q, want %q", got, tc.plaintext)
			}
		})
	}
}

func TestSealUsesAFreshNonce(t *testing.T) {
	t.Parallel()
	box := setup(t)
	seen := map[string]bool{}
	for range 1000 {
		s := string(box.Seal([]byte("same"), []byte("same")))
		if seen[s] {
			t.Fatal("two seals of the same value are identical")
		}
		seen[s] = true
	}
}

func TestOpenRejects(t *testing.T) {
	t.Parallel()
	box := setup(t)
	other := setup(t)
	sealed := box.Seal([]byte("refresh token"), []byte("workspace-A"))
	flip := func(i int) []byte {
		b := bytes.Clone(sealed)
		b[i] ^= 0x01
		return b
	}
	tests := []struct {
		name       string
		box        *secrets.Box
		ciphertext []byte
		aad        []byte
		want       error
	}{
		{"wrong aad (another workspace's row)", box, sealed, []byte("workspace-B"), secrets.ErrDecrypt},
		{"missing aad", box, sealed, nil, secrets.ErrDecrypt},
		{"wrong key", other, sealed, []byte("workspace-A"), secrets.ErrDecrypt},
		{"nonce changed", box, flip(1), []byte("workspace-A"), secrets.ErrDecrypt},
		{"ciphertext changed", box, flip(14), []byte("workspace-A"), secrets.ErrDecrypt},
		{"tag changed", box, flip(len(sealed) - 1), []byte("workspace-A"), secrets.ErrDecrypt},
		{"truncated", box, sealed[:len(sealed)-1], []byte("workspace-A"), secrets.ErrDecrypt},
		{"too short", box, sealed[:20], []byte("workspace-A"), secrets.ErrDecrypt},
		{"empty", box, nil, []byte("workspace-A"), secrets.ErrDecrypt},
		{"unknown version", box, append([]byte{2}, sealed[1:]...), []byte("workspace-A"), secrets.ErrUnknownVersion},
		{"not sealed at all", box, []byte("plain text token"), []byte("workspace-A"), secrets.ErrUnknownVersion},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := tc.box.Open(tc.ciphertext, tc.aad)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Open error = %v, want %v", err, tc.want)
			}
			if got != nil {
				t.Fatalf("Open returned %q with an error", got)
			}
		})
	}
}

func TestEveryByteIsAuthenticated(t *testing.T) {
	t.Parallel()
	box := setup(t)
	sealed := box.Seal([]byte("refresh token"), []byte("w"))
	for i := range sealed {
		b := bytes.Clone(sealed)
		b[i] ^= 0x80
		if _, err := box.Open(b, []byte("w")); err == nil {
			t.Fatalf("a change of byte %d went unnoticed", i)
		}
	}
}

func TestNewBoxKeySize(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 16, 24, 31, 33, 64} {
		if _, err := secrets.NewBox(make([]byte, n)); err == nil {
			t.Errorf("NewBox accepted a %d-byte key", n)
		}
	}
	if _, err := secrets.NewBox(make([]byte, 32)); err != nil {
		t.Errorf("NewBox(32 bytes): %v", err)
	}
}

func TestParseKey(t *testing.T) {
	t.Parallel()
	key := secrets.GenerateKey()
	tests := []struct {
		name    string
		in      string
		wantErr string // a part of the message; "" = ok
	}{
		{"standard base64", base64.StdEncoding.EncodeToString(key), ""},
		{"EncodeKey", secrets.EncodeKey(key), ""},
		{"unpadded", base64.RawStdEncoding.EncodeToString(key), ""},
		{"URL alphabet", base64.URLEncoding.EncodeToString(key), ""},
		{"URL alphabet unpadded", base64.RawURLEncoding.EncodeToString(key), ""},
		{"surrounding space and newline", "  " + secrets.EncodeKey(key) + "\n", ""},
		{"empty", "", "empty"},
		{"spaces only", " \n", "empty"},
		{"not base64", "this is not base64 at all, is it?!", "not valid base64"},
		{"16 bytes", base64.StdEncoding.EncodeToString(key[:16]), "16 bytes, want 32"},
		{"33 bytes", base64.StdEncoding.EncodeToString(append(key, 1)), "33 bytes, want 32"},
		{"hex instead of base64", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", "48 bytes, want 32"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := secrets.ParseKey(tc.in)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, key) {
					t.Fatal("ParseKey returned another key")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error = %v, want one saying %q", err, tc.wantErr)
			}
			if s := strings.TrimSpace(tc.in); len(s) > 4 && strings.Contains(err.Error(), s) {
				t.Fatalf("error %q repeats the key", err)
			}
		})
	}
}

func TestLoadOrCreateKeyCreatesOnceAndReloads(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "state", "keys") // created on demand
	key, err := secrets.LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(key) != secrets.KeySize {
		t.Fatalf("key is %d bytes", len(key))
	}
	path := filepath.Join(dir, secrets.KeyFileName)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %04o, want 0600", st.Mode().Perm())
	}
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if parsed, err := secrets.ParseKey(string(text)); err != nil || !bytes.Equal(parsed, key) {
		t.Fatalf("key file does not hold the key in ParseKey's format: %v", err)
	}
	again, err := secrets.LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, key) {
		t.Fatal("second call made a new key")
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Fatalf("folder holds %v (%v), want the key file only", entries, err)
	}
}

func TestLoadOrCreateKeyConcurrentFirstUse(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		keys [][]byte
	)
	for range 8 {
		wg.Go(func() {
			k, err := secrets.LoadOrCreateKey(dir)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			keys = append(keys, k)
			mu.Unlock()
		})
	}
	wg.Wait()
	for _, k := range keys[1:] {
		if !bytes.Equal(k, keys[0]) {
			t.Fatal("concurrent first calls returned different keys")
		}
	}
}

func TestLoadOrCreateKeyRefusesBadFiles(t *testing.T) {
	t.Parallel()
	good := secrets.EncodeKey(secrets.GenerateKey()) + "\n"
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		wantErr string
	}{
		{"readable by others", good, 0o644, "chmod 600"},
		{"readable by group", good, 0o640, "chmod 600"},
		{"writable by others", good, 0o602, "chmod 600"},
		{"owner read-only is fine", good, 0o400, ""},
		{"empty", "", 0o600, "empty"},
		{"wrong length", secrets.EncodeKey(make([]byte, 16)), 0o600, "16 bytes"},
		{"garbage", "not a key!!", 0o600, "not valid base64"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, secrets.KeyFileName)
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			_, err := secrets.LoadOrCreateKey(dir)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error = %v, want one saying %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), strings.TrimSpace(good)) {
				t.Fatal("the error repeats the key")
			}
			// A refused file is never replaced by a new key.
			if b, _ := os.ReadFile(path); string(b) != tc.content {
				t.Fatal("the key file was changed")
			}
		})
	}
}

func TestLoadOrCreateKeyRefusesADirectory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, secrets.KeyFileName), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := secrets.LoadOrCreateKey(dir); err == nil {
		t.Fatal("a directory was accepted as the key file")
	}
}
