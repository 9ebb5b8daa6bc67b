package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/clarion/sentinel/internal/store"
)

// The SkillStore part of the contract: skills with their toolsets, and the
// tool-call audit.

func newSkill(t *testing.T, s store.Store, workspaceID, name string, toolsets ...string) store.Skill {
	t.Helper()
	sk := store.Skill{ID: store.NewID(), WorkspaceID: workspaceID, Name: name, Description: "Skill " + name,
		Toolsets: toolsets, CreatedAt: t0, UpdatedAt: t0}
	must(t, s.CreateSkill(t.Context(), sk))
	if len(sk.Toolsets) == 0 {
		sk.Toolsets = nil
	}
	slices.Sort(sk.Toolsets)
	return sk
}

func testSkillRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorkspace(t, s)
	sk := newSkill(t, s, w.ID, "triage", "sentinel-triage", "sentinel-datalake")
	got, err := s.GetSkill(ctx, w.ID, "triage")
	must(t, err)
	equal(t, "GetSkill", got, sk)
	if !slices.Equal(got.Toolsets, []string{"sentinel-datalake", "sentinel-triage"}) {
		t.Fatalf("toolsets %v, want sorted", got.Toolsets)
	}

	empty := newSkill(t, s, w.ID, "empty")
	got, err = s.GetSkill(ctx, w.ID, "empty")
	must(t, err)
	equal(t, "skill without toolsets", got, empty)

	all, err := s.ListSkills(ctx, w.ID)
	must(t, err)
	equal(t, "ListSkills (by name)", all, []store.Skill{empty, sk})

	_, err = s.GetSkill(ctx, w.ID, "nope")
	wantErr(t, err, store.ErrNotFound)
	other := newWorkspace(t, s)
	none, err := s.ListSkills(ctx, other.ID)
	must(t, err)
	if len(none) != 0 {
		t.Fatalf("another workspace lists %v", none)
	}
}

func testSkillConflicts(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorkspace(t, s)
	sk := newSkill(t, s, w.ID, "triage")
	dupName := store.Skill{ID: store.NewID(), WorkspaceID: w.ID, Name: "triage", CreatedAt: t0}
	wantErr(t, s.CreateSkill(ctx, dupName), store.ErrConflict)
	dupID := store.Skill{ID: sk.ID, WorkspaceID: w.ID, Name: "other", CreatedAt: t0}
	wantErr(t, s.CreateSkill(ctx, dupID), store.ErrConflict)
	noWS := store.Skill{ID: store.NewID(), WorkspaceID: "no-such-workspace", Name: "x", CreatedAt: t0}
	wantErr(t, s.CreateSkill(ctx, noWS), store.ErrNotFound)

	// The same name in another workspace is another skill.
	other := newWorkspace(t, s)
	theirs := newSkill(t, s, other.ID, "triage", "sentinel-triage")
	mine, err := s.GetSkill(ctx, w.ID, "triage")
	must(t, err)
	if mine.ID == theirs.ID || len(mine.Toolsets) != 0 {
		t.Fatalf("workspaces share a skill: mine %+v theirs %+v", mine, theirs)
	}
	if err := s.CreateSkill(ctx, store.Skill{ID: store.NewID(), WorkspaceID: w.ID, Name: "bad\x00name", CreatedAt: t0}); err == nil {
		t.Fatal("CreateSkill accepted a NUL in the name")
	}
}

func testAttachDetachToolsets(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorkspace(t, s)
	newSkill(t, s, w.ID, "triage")
	t1 := t0.Add(time.Minute)

	got, err := s.AttachToolset(ctx, w.ID, "triage", "sentinel-triage", t1)
	must(t, err)
	equal(t, "after attach", got.Toolsets, []string{"sentinel-triage"})
	if !got.UpdatedAt.Equal(t1) || !got.CreatedAt.Equal(t0) {
		t.Fatalf("times after attach: created %v updated %v", got.CreatedAt, got.UpdatedAt)
	}
	got, err = s.AttachToolset(ctx, w.ID, "triage", "sentinel-triage", t1)
	must(t, err)
	equal(t, "attach is idempotent", got.Toolsets, []string{"sentinel-triage"})
	got, err = s.AttachToolset(ctx, w.ID, "triage", "sentinel-datalake", t1)
	must(t, err)
	equal(t, "two toolsets", got.Toolsets, []string{"sentinel-datalake", "sentinel-triage"})

	got, err = s.DetachToolset(ctx, w.ID, "triage", "sentinel-triage", t1.Add(time.Minute))
	must(t, err)
	equal(t, "after detach", got.Toolsets, []string{"sentinel-datalake"})
	got, err = s.DetachToolset(ctx, w.ID, "triage", "sentinel-triage", t1.Add(time.Minute))
	must(t, err)
	equal(t, "detach is idempotent", got.Toolsets, []string{"sentinel-datalake"})
	read, err := s.GetSkill(ctx, w.ID, "triage")
	must(t, err)
	equal(t, "GetSkill after changes", read, got)

	_, err = s.AttachToolset(ctx, w.ID, "nope", "sentinel-triage", t1)
	wantErr(t, err, store.ErrNotFound)
	_, err = s.DetachToolset(ctx, w.ID, "nope", "sentinel-triage", t1)
	wantErr(t, err, store.ErrNotFound)
	other := newWorkspace(t, s)
	_, err = s.AttachToolset(ctx, other.ID, "triage", "sentinel-triage", t1)
	wantErr(t, err, store.ErrNotFound)
}

func testAttachToolsetsConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorkspace(t, s)
	newSkill(t, s, w.ID, "triage")
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 10 {
		wg.Go(func() {
			ts := fmt.Sprintf("toolset-%d", i%5)
			if _, err := s.AttachToolset(ctx, w.ID, "triage", ts, t0); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got, err := s.GetSkill(ctx, w.ID, "triage")
	must(t, err)
	equal(t, "toolsets", got.Toolsets, []string{"toolset-0", "toolset-1", "toolset-2", "toolset-3", "toolset-4"})
}

func testDeleteSkill(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorkspace(t, s)
	newSkill(t, s, w.ID, "triage", "sentinel-triage")
	must(t, s.InsertToolCall(ctx, store.ToolCall{ID: store.NewID(), WorkspaceID: w.ID, Skill: "triage", Tool: "ListIncidents",
		Outcome: "ok", CalledAt: t0}))
	other := newWorkspace(t, s)
	newSkill(t, s, other.ID, "triage", "sentinel-triage")

	wantErr(t, s.DeleteSkill(ctx, w.ID, "nope"), store.ErrNotFound)
	must(t, s.DeleteSkill(ctx, w.ID, "triage"))
	_, err := s.GetSkill(ctx, w.ID, "triage")
	wantErr(t, err, store.ErrNotFound)
	wantErr(t, s.DeleteSkill(ctx, w.ID, "triage"), store.ErrNotFound)
	if _, err := s.GetSkill(ctx, other.ID, "triage"); err != nil {
		t.Fatalf("deleting a skill removed another workspace's skill of the same name: %v", err)
	}
	calls, err := s.ListToolCalls(ctx, w.ID, store.ToolCallFilter{})
	must(t, err)
	if len(calls) != 1 {
		t.Fatalf("audit after the skill was deleted: %d records, want 1", len(calls))
	}
	// A new skill of the same name starts without toolsets.
	sk := newSkill(t, s, w.ID, "triage")
	got, err := s.GetSkill(ctx, w.ID, "triage")
	must(t, err)
	equal(t, "recreated skill", got, sk)
}

func newToolCall(w store.Workspace, at time.Time, tool string) store.ToolCall {
	return store.ToolCall{
		ID: store.NewID(), WorkspaceID: w.ID, Skill: "triage", TokenID: "token-1", UserID: "",
		Tool: tool, Arguments: `{"incidentID":"2972395"}`, Outcome: "not_found",
		Error: "No incident with this id.", Duration: 1234567 * time.Nanosecond, CalledAt: at,
	}
}

func testToolCallRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorkspace(t, s)
	c := newToolCall(w, t0, "GetIncidentById")
	must(t, s.InsertToolCall(ctx, c))
	got, err := s.ListToolCalls(ctx, w.ID, store.ToolCallFilter{})
	must(t, err)
	equal(t, "ListToolCalls", got, []store.ToolCall{c})

	wantErr(t, s.InsertToolCall(ctx, c), store.ErrConflict)
	bad := newToolCall(w, t0, "x")
	bad.WorkspaceID = "no-such-workspace"
	wantErr(t, s.InsertToolCall(ctx, bad), store.ErrNotFound)
	nul := newToolCall(w, t0, "x")
	nul.Arguments = "{\"a\":\"x\x00\"}"
	if err := s.InsertToolCall(ctx, nul); err == nil {
		t.Fatal("InsertToolCall accepted a NUL in the arguments")
	}
	noArgs := newToolCall(w, t0, "list_sentinel_workspaces")
	noArgs.Arguments = ""
	must(t, s.InsertToolCall(ctx, noArgs))
	got, err = s.ListToolCalls(ctx, w.ID, store.ToolCallFilter{Tool: "list_sentinel_workspaces"})
	must(t, err)
	if len(got) != 1 || got[0].Arguments != "{}" {
		t.Fatalf("empty arguments read back as %+v, want {}", got)
	}

	other := newWorkspace(t, s)
	theirs, err := s.ListToolCalls(ctx, other.ID, store.ToolCallFilter{})
	must(t, err)
	if len(theirs) != 0 {
		t.Fatalf("another workspace sees %d audit records", len(theirs))
	}
}

func testToolCallsOrderPagingFilters(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorkspace(t, s)
	var want []string
	for i := range 7 {
		tool := "ListIncidents"
		if i%2 == 1 {
			tool = "query_lake"
		}
		// Two records share each time: the id breaks the tie.
		c := newToolCall(w, t0.Add(time.Duration(i/2)*time.Second), tool)
		if i == 6 {
			c.Skill = "hunting"
		}
		must(t, s.InsertToolCall(ctx, c))
		want = append(want, c.ID)
	}
	slices.Reverse(want) // ids grow with time: newest first is the reverse

	var got []string
	f := store.ToolCallFilter{Limit: 3}
	for {
		page, err := s.ListToolCalls(ctx, w.ID, f)
		must(t, err)
		for _, c := range page {
			got = append(got, c.ID)
		}
		if len(page) < f.Limit {
			break
		}
		last := page[len(page)-1]
		f.BeforeCalledAt, f.BeforeID = last.CalledAt, last.ID
	}
	equal(t, "pages newest first", got, want)

	lake, err := s.ListToolCalls(ctx, w.ID, store.ToolCallFilter{Tool: "query_lake"})
	must(t, err)
	if len(lake) != 3 {
		t.Fatalf("tool filter: %d records, want 3", len(lake))
	}
	hunting, err := s.ListToolCalls(ctx, w.ID, store.ToolCallFilter{Skill: "hunting"})
	must(t, err)
	if len(hunting) != 1 || hunting[0].ID != want[0] {
		t.Fatalf("skill filter: %+v", hunting)
	}
	capped, err := s.ListToolCalls(ctx, w.ID, store.ToolCallFilter{Limit: store.MaxToolCallLimit + 100})
	must(t, err)
	if len(capped) != 7 {
		t.Fatalf("limit above the cap: %d records", len(capped))
	}
}
