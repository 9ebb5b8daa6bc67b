package store

// SkillStore holds skills (named sets of toolsets per workspace) and the
// audit record of every agent tool call.
type SkillStore interface {
}
