package emulator

import "github.com/modelcontextprotocol/go-sdk/mcp"

// The triage MCP server (https://sentinel.microsoft.com/mcp/triage) is
// served at /mcp/triage behind the same checks as data exploration, with
// the Defender MCP audience (7b7b3966-…) and permission MCP.Read.All. A
// tenant without the Defender MCP service principal never gets such a
// token (AADSTS650052 at the token endpoint), so it never reaches it.
//
// Seam for the triage tools (not built yet): add them in
// registerTriageTools with mcp.AddTool, using Microsoft's tool names
// (ListIncidents, GetIncidentById, ListAlerts, GetAlertByID,
// RunAdvancedHuntingQuery, ... MICROSOFT.md §3) and answering in the
// Microsoft Graph security.incident / security.alert shapes. In a handler:
//
//   - caller(req) is the tenant id of the access token;
//   - e.Rows / e.Incidents / e.Query read the tenant's workspaces (only rows
//     whose visibility time has passed are seen by e.Query);
//   - toolError(...) answers a tool error (IsError), toolJSON(v) a result;
//   - faults (throttle, server_error, delay, truncate) and Stats.Tools are
//     already applied by tool name at the HTTP level (mcpEndpoint.ServeHTTP).
func (e *Emulator) newTriageEndpoint() *mcpEndpoint {
	return e.newMCPEndpoint("triage", DefenderMCPResource, DefenderMCPPermission, e.registerTriageTools)
}

// registerTriageTools adds the triage tools to the triage server. It adds
// none yet.
func (e *Emulator) registerTriageTools(s *mcp.Server) {}
