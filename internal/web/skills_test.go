package web_test

import (
	"slices"
	"strconv"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/clarion/sentinel/internal/tools"
)

// TestSkillEditor: a skill is created (a bad name is refused next to the
// field, kept as typed), and the two Sentinel toolsets are attached and
// detached, each showing every tool it brings; the change is what the
// tools service (and so /api/v1/skills and MCP) sees.
func TestSkillEditor(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.connected()

	e.open("/skills", "#no-skills")
	e.fill("#skill-name", "Triage agents!")
	e.fill("#skill-description", "Tier-1 triage")
	e.click("#create-skill", "#skill-name-error")
	contains(t, "name error", e.text("#skill-name-error"), "1 to 64 characters")
	mustEqual(t, "name kept", run(e, chromedp.Value(chromedp.CSS("#skill-name"))), "Triage agents!")
	mustEqual(t, "description kept", run(e, chromedp.Value(chromedp.CSS("#skill-description"))), "Tier-1 triage")
	e.shot("1-bad-name")

	e.fill("#skill-name", "triage")
	e.click("#create-skill", "#done-skill_created")
	mustEqual(t, "skill", e.text("#skill-name"), "triage")
	mustEqual(t, "MCP path", e.text("#mcp-path"), "/mcp/skills/triage")
	for _, ts := range tools.Toolsets {
		mustEqual(t, ts.Name, e.text("#toolset-"+ts.ID+"-state"), "Not attached")
		// Every tool is listed, attached or not.
		n := js[int](e, `document.querySelectorAll("#toolset-`+ts.ID+` li.tool").length`)
		mustEqual(t, ts.Name+" tools listed", n, len(ts.Tools))
		for _, tool := range ts.Tools {
			got := js[string](e, `document.querySelector('#toolset-`+ts.ID+` li.tool[data-tool="`+tool.Name+`"]').textContent`)
			contains(t, "tool", got, tool.Title)
		}
	}
	e.shot("2-created")

	e.click("#attach-"+tools.ToolsetTriage, "#done-attached")
	contains(t, "done", e.text("#done-attached"), "MS Sentinel Triage attached")
	mustEqual(t, "triage", e.text("#toolset-"+tools.ToolsetTriage+"-state"), "Attached")
	e.click("#attach-"+tools.ToolsetDataLake, "#done-attached")
	mustEqual(t, "data lake", e.text("#toolset-"+tools.ToolsetDataLake+"-state"), "Attached")
	mustEqual(t, "tools open", js[bool](e, `document.querySelector("#toolset-`+tools.ToolsetDataLake+` details").open`), true)
	e.shot("3-both-attached")

	sk, err := e.app.Tools.GetSkill(t.Context(), e.workspaceID, "triage")
	if err != nil || !slices.Equal(sk.Toolsets, []string{tools.ToolsetDataLake, tools.ToolsetTriage}) && !slices.Equal(sk.Toolsets, []string{tools.ToolsetTriage, tools.ToolsetDataLake}) {
		t.Fatalf("skill after attaching = %+v, %v", sk, err)
	}

	e.click("#detach-"+tools.ToolsetTriage, "#done-detached")
	mustEqual(t, "triage", e.text("#toolset-"+tools.ToolsetTriage+"-state"), "Not attached")
	sk, err = e.app.Tools.GetSkill(t.Context(), e.workspaceID, "triage")
	if err != nil || !slices.Equal(sk.Toolsets, []string{tools.ToolsetDataLake}) {
		t.Fatalf("skill after detaching = %+v, %v", sk, err)
	}
	e.shot("4-triage-detached")

	e.open("/skills", "#skills-table")
	contains(t, "list", e.text(`tr[data-skill="triage"]`), "MS Sentinel Data Lake")
	mustEqual(t, "skills", strconv.Itoa(js[int](e, `document.querySelectorAll("#skills-table tbody tr").length`)), "1")
	e.shot("5-list")
}
