package tools

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/clarion/sentinel/internal/store"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestSkillServersAreKeptPerVersionOfASkill: a skill read again unchanged
// gets the server built before; any change — toolsets, description, a
// delete and recreate — gets a new one, even at the same update time; and
// the same name in another workspace never gets the first one's server.
func TestSkillServersAreKeptPerVersionOfASkill(t *testing.T) {
	t.Parallel()
	s := &Service{}
	at := time.Date(2026, 6, 21, 10, 0, 0, 0, time.UTC)
	a := store.Skill{ID: "s1", WorkspaceID: "wa", Name: "triage", Description: "d", Toolsets: []string{ToolsetTriage}, CreatedAt: at, UpdatedAt: at}
	first := s.skillServer(a)
	if again := s.skillServer(a); again != first {
		t.Fatal("an unchanged skill got a new server")
	}
	// The caller's slice is not kept: changing it does not change the entry.
	a2 := a
	a2.Toolsets = append([]string(nil), a.Toolsets...)
	a2.Toolsets[0] = ToolsetDataLake
	if s.skillServer(a2) == first {
		t.Fatal("a skill with other toolsets and the same update time got the old server")
	}
	s.skillServer(a) // back to the first version

	changes := map[string]func(sk *store.Skill){
		"toolset attached":    func(sk *store.Skill) { sk.Toolsets = []string{ToolsetDataLake, ToolsetTriage} },
		"toolset detached":    func(sk *store.Skill) { sk.Toolsets = nil },
		"updated":             func(sk *store.Skill) { sk.UpdatedAt = sk.UpdatedAt.Add(time.Nanosecond) },
		"description":         func(sk *store.Skill) { sk.Description = "other" },
		"deleted, recreated":  func(sk *store.Skill) { sk.ID = "s2" },
		"another workspace":   func(sk *store.Skill) { sk.WorkspaceID = "wb" },
		"another workspace 2": func(sk *store.Skill) { sk.WorkspaceID, sk.ID = "wb", "s3" },
	}
	for name, change := range changes {
		sk := a
		sk.Toolsets = append([]string(nil), a.Toolsets...)
		change(&sk)
		if got := s.skillServer(sk); got == first {
			t.Errorf("%s: the old server was used", name)
		}
		s.skillServer(a) // restore the first version's entry, if replaced
	}
	// Workspace B's skill of the same name and contents has its own entry:
	// A's stays.
	b := a
	b.WorkspaceID, b.ID = "wb", "s4"
	sb := s.skillServer(b)
	if sb == first || s.skillServer(a) == sb {
		t.Fatal("workspaces share a server")
	}
	if s.skillServer(b) != sb || s.skillServer(a) == sb {
		t.Fatal("the two workspaces' entries replace each other")
	}
	s.servers.forget("wa", "triage")
	if s.skillServer(a) == first {
		t.Fatal("a forgotten skill's server was used again")
	}
}

// TestSharedSkillServerRunsNothingWithoutTheRequestsSkill: the tools of a
// kept server take the caller and the skill from the request; a request
// that carries none, or another skill, runs nothing.
func TestSharedSkillServerRunsNothingWithoutTheRequestsSkill(t *testing.T) {
	t.Parallel()
	// No store, tokens or upstream: reaching them would panic.
	s := &Service{}
	sk := store.Skill{ID: "s1", WorkspaceID: "wa", Name: "lake", Toolsets: []string{ToolsetDataLake}}
	other := sk
	other.ID = "s2"
	cases := map[string]context.Context{
		"no request":               context.Background(),
		"another skill":            context.WithValue(context.Background(), mcpRequestKey{}, &mcpRequest{caller: Caller{WorkspaceID: "wa"}, skill: other}),
		"another caller workspace": context.WithValue(context.Background(), mcpRequestKey{}, &mcpRequest{caller: Caller{WorkspaceID: "wb"}, skill: sk}),
	}
	for name, ctx := range cases {
		t.Run(name, func(t *testing.T) {
			srv := s.skillServer(sk)
			ct, st := mcp.NewInMemoryTransports()
			ss, err := srv.Connect(ctx, st, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ss.Close()
			cs, err := mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, nil).Connect(t.Context(), ct, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer cs.Close()
			res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "list_sentinel_workspaces", Arguments: map[string]any{}})
			if err != nil {
				t.Fatal(err)
			}
			text := res.Content[0].(*mcp.TextContent).Text
			if !res.IsError || !strings.Contains(text, CodeInternal) {
				t.Fatalf("got %v %q, want an internal error", res.IsError, text)
			}
		})
	}
}
