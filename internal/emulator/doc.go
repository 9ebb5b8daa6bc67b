// Package emulator owns the Microsoft emulator: a faithful local imitation
// of the Microsoft endpoints Clarion calls, used by every test and by
// `clarion demo`. Clarion must not be able to tell it from Microsoft except
// by its base URL: one host serves, under the same paths as Microsoft's,
//
//   - Microsoft Entra ID v2 (login.microsoftonline.com): admin consent and
//     sign-in pages (plain HTML forms), the token endpoint (authorization
//     code with PKCE, refresh tokens that rotate, Entra's error bodies with
//     AADSTS codes), JWKS and OpenID metadata. Tokens are RS256 JWTs whose
//     issuer is {base}/{tid}/v2.0, {base} being the scheme and host the
//     request came in on;
//   - the Sentinel MCP servers (sentinel.microsoft.com/mcp): data
//     exploration (list_sentinel_workspaces, search_tables, query_lake over
//     a KQL evaluator, package kql) and triage (the Defender tools in
//     Microsoft Graph security shapes, built on the same incidents), over
//     streamable HTTP with bearer-token checks.
//
// Tenants, users, workspaces and the app registration come from Config
// (DefaultConfig seeds Contoso and Fabrikam). Incidents are rows of the
// SecurityIncident table, added with AddIncident (each update is a new
// row) and visible to queries once the clock passes their visibility time.
// Faults (SetFault) and Stats serve the tests; Browser clicks through the
// consent and sign-in pages.
//
// # Control API
//
// Only on the emulator, JSON, under /_emulator/ (GET /_emulator/ lists it):
//
//	GET    /_emulator/tenants                       tenants, users, workspaces, state, consents
//	PATCH  /_emulator/tenants/{tenant}              {"dataLakeOnboarded":false,"defenderMcpProvisioned":false}
//	POST   /_emulator/tenants/{tenant}/revoke       {"aadsts":700082}: RevokeGrants
//	GET    /_emulator/tenants/{tenant}/workspaces/{workspace}/incidents
//	       every SecurityIncident row, visible or not: {"rows":[{"visibleAt","row"}]}
//	POST   /_emulator/tenants/{tenant}/workspaces/{workspace}/incidents[?visible_after=90s|visible_at=<time>]
//	       add incidents; the body is any shape DecodeIncidents reads (ARM page
//	       or incident, Log Analytics rows, {"rows":[...]}, Graph incidents) or
//	       one row object; answers 201 {"incidents":[rows as stored]}
//	PATCH  /_emulator/tenants/{tenant}/workspaces/{workspace}/incidents/{incidentName}[?visible_after=...]
//	       update an incident: body = the columns that change; a new row
//	       (UpdateIncident); answers {"incident": row}
//	GET    /_emulator/tenants/{tenant}/workspaces/{workspace}/tables/{table}/rows
//	POST   /_emulator/tenants/{tenant}/workspaces/{workspace}/tables/{table}/rows
//	       rows of other tables (SecurityAlert, SigninLogs, ...): [rows] or {"rows":[...]}
//	POST   /_emulator/tenants/{tenant}/workspaces/{workspace}/query {"query":"<KQL>"}
//	       run KQL as query_lake would (no auth, no limits): {"tables":[...]}
//	GET    /_emulator/faults                        {"faults":[...]}
//	POST   /_emulator/faults                        a Fault as JSON, e.g.
//	       {"tenantId":"<tid>","target":"query_lake","kind":"throttle","retryAfter":30,"count":1}
//	       {"target":"token","kind":"aadsts","aadsts":700082,"grantType":"refresh_token"}
//	       {"kind":"delay","target":"token","delay":"5s"}; answers 201 with its id
//	DELETE /_emulator/faults, /_emulator/faults/{id}
//	GET    /_emulator/stats                         Stats as JSON; DELETE resets
//
// Row values in the control API use the Log Analytics text forms
// (datetimes with seven fractional digits); dynamic columns are JSON
// values. Errors are {"error":"..."} with 400 or 404.
package emulator
