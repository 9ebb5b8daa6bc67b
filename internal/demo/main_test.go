package demo

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clarion/sentinel/internal/emulator"
	"github.com/clarion/sentinel/internal/samples"
)

// TestDemoReplaysTheRealIncidentPage is issue 2's acceptance command run
// in-process: `clarion demo --poll-interval 1s --incidents <the real 50-incident
// ARM page>` ingests exactly those 50 incidents, mapped, linked and with
// their payloads, and still exactly 50 after further polls.
func TestDemoReplaysTheRealIncidentPage(t *testing.T) {
	if testing.Short() {
		t.Skip("demo run: skipped with -short")
	}
	t.Parallel()
	sample := samples.Path(t, "arm_incidents_list_page_nextlink_SOC_agent_ss.json")
	rows, err := emulator.LoadIncidents(sample)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Main(ctx, []string{"--addr", addr, "--data-dir", dir, "--poll-interval", "1s", "--log-level", "warn", "--incidents", sample}, io.Discard, io.Discard)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("demo ended with %v", err)
		}
	}()

	var creds Credentials
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(dir, "demo-credentials.json"))
		if err == nil && json.Unmarshal(b, &creds) == nil && creds.APIToken != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("demo-credentials.json never appeared")
		}
		time.Sleep(50 * time.Millisecond)
	}
	type alert struct {
		Title, Severity, DeepLink, IncidentID string
		Payload                               json.RawMessage
	}
	list := func() []alert {
		req, _ := http.NewRequest("GET", creds.URL+"/api/v1/alerts?limit=500", nil)
		req.Header.Set("Authorization", "Bearer "+creds.APIToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct {
			Alerts []struct {
				Title      string          `json:"title"`
				Severity   string          `json:"severity"`
				DeepLink   string          `json:"deep_link"`
				IncidentID string          `json:"incident_id"`
				Payload    json.RawMessage `json:"payload"`
			} `json:"alerts"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		var as []alert
		for _, a := range out.Alerts {
			as = append(as, alert{a.Title, a.Severity, a.DeepLink, a.IncidentID, a.Payload})
		}
		return as
	}
	var got []alert
	for deadline = time.Now().Add(30 * time.Second); ; {
		if got = list(); len(got) >= len(rows) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(got) != 50 || len(rows) != 50 {
		t.Fatalf("%d alerts for %d incidents within 30 s, want 50", len(got), len(rows))
	}
	byID := map[string]alert{}
	for _, a := range got {
		byID[a.IncidentID] = a
	}
	for _, r := range rows {
		a, ok := byID[r["IncidentName"].(string)]
		if !ok {
			t.Fatalf("no alert for %q", r["Title"])
		}
		want := strings.ToLower(r["Severity"].(string))
		if a.Title != r["Title"] || a.Severity != want {
			t.Errorf("alert %q/%s, want %q/%s", a.Title, a.Severity, r["Title"], want)
		}
		if !strings.HasPrefix(a.DeepLink, "https://") || !strings.Contains(string(a.Payload), a.IncidentID) {
			t.Errorf("%s: deep link %q or payload missing", a.IncidentID, a.DeepLink)
		}
	}
	time.Sleep(3 * time.Second) // three more poll intervals
	if n := len(list()); n != 50 {
		t.Fatalf("%d alerts after further polls, want still 50", n)
	}
}
