// Package sentinel owns Clarion's side of the conversation with Microsoft's
// Sentinel MCP servers (data exploration and triage): an MCP client that
// carries the tenant's delegated bearer token on every request, the error
// classification the monitor engine and the agent tools act on (throttled,
// transient, unauthorized, not onboarded), the KQL poll query over the
// SecurityIncident table, and the parsing of what Microsoft returns (Log
// Analytics tables, Kusto v2 frames, structured tool content) into incidents.
//
// Microsoft does not document the JSON its MCP tools return, so everything
// here parses defensively and keeps each incident row exactly as it came, to
// become the alert's payload.
package sentinel
