// Package tools owns Clarion's agent tools for Microsoft Sentinel: the two
// toolsets ("MS Sentinel Triage" and "MS Sentinel Data Lake") with
// Microsoft's tool names and parameters, skills (a named set of attached
// toolsets per Clarion workspace), and the two ways agents reach a skill's
// tools: MCP over streamable HTTP at /mcp/skills/{skill} and plain JSON at
// POST /api/v1/tools/{name}?skill={skill}.
//
// Every call goes through Service.Call, the same for both: the skill must
// belong to the caller's workspace and have the tool's toolset attached;
// the arguments are checked before anything goes upstream (ids, hashes,
// addresses, KQL length, ranges, dates); the call runs with an access token
// of the caller's own Sentinel connection for the tool's resource (Defender
// MCP for triage, Sentinel platform for the data lake) through package
// sentinel; failures become an Error with a stable code and a sentence an
// agent can act on; large results are capped with a marker; and an audit
// record (arguments redacted) is written for every call, by a writer that
// takes the commit off the call's path and that Service.Close flushes.
package tools
