package tools

import (
	"slices"
	"sync"

	"github.com/clarion/sentinel/internal/store"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// maxSkillServers bounds the servers kept (about 10 KB each; building one
// costs 0.4 ms of CPU for the data lake's 3 tools, about 3 ms for all 23,
// mostly resolving the tools' schemas). Past it an arbitrary one is
// dropped, and rebuilt when its skill is called again.
const maxSkillServers = 1024

// skillServers keeps the MCP server built for each skill, so that a
// request does not build the server and its tools' schemas anew.
//
// It never decides what a request sees: every request still reads its
// skill from the store (in the caller's workspace), and a kept server is
// used only when it was built from a skill identical to the one just read —
// same workspace, id, name, description, toolsets and update time. A skill
// changed, deleted or recreated under the same name gets a new server at
// its next request, on every replica, with no invalidation to miss. The
// key's workspace keeps one workspace's server away from another's skill of
// the same name.
type skillServers struct {
	mu sync.Mutex
	m  map[skillKey]*builtServer
}

type skillKey struct{ workspaceID, name string }

type builtServer struct {
	skill store.Skill // the skill as it was when srv was built
	srv   *mcp.Server
}

// get returns the server of sk, building it with build when none was built
// from this very skill.
func (c *skillServers) get(sk store.Skill, build func(store.Skill) *mcp.Server) *mcp.Server {
	k := skillKey{sk.WorkspaceID, sk.Name}
	c.mu.Lock()
	b, ok := c.m[k]
	c.mu.Unlock()
	if ok && sameSkill(b.skill, sk) {
		return b.srv
	}
	// Built outside the lock; two requests racing on a changed skill both
	// build it, and the later one is kept: both are correct.
	sk.Toolsets = slices.Clone(sk.Toolsets)
	srv := build(sk)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[skillKey]*builtServer{}
	}
	if _, ok := c.m[k]; !ok && len(c.m) >= maxSkillServers {
		for old := range c.m {
			delete(c.m, old)
			break
		}
	}
	c.m[k] = &builtServer{skill: sk, srv: srv}
	return srv
}

// forget drops the server of a skill that is gone.
func (c *skillServers) forget(workspaceID, name string) {
	c.mu.Lock()
	delete(c.m, skillKey{workspaceID, name})
	c.mu.Unlock()
}

// sameSkill reports whether a and b are the same version of one skill. The
// update time alone is not enough: changes can share a timestamp (a clock
// with coarse ticks, a test's frozen clock).
func sameSkill(a, b store.Skill) bool {
	return a.ID == b.ID && a.WorkspaceID == b.WorkspaceID && a.Name == b.Name && a.Description == b.Description &&
		a.CreatedAt.Equal(b.CreatedAt) && a.UpdatedAt.Equal(b.UpdatedAt) && slices.Equal(a.Toolsets, b.Toolsets)
}
