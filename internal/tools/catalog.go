package tools

import (
	"encoding/json"
	"slices"

	"github.com/clarion/sentinel/internal/connection"
	"github.com/clarion/sentinel/internal/sentinel"
)

// Toolset ids, as the skills API names them.
const (
	ToolsetTriage   = "sentinel-triage"
	ToolsetDataLake = "sentinel-datalake"
)

// Toolset is a group of tools attached to skills as a whole.
type Toolset struct {
	ID          string
	Name        string
	Description string
	Tools       []*Tool
}

// Tool is one agent tool: Microsoft's tool of the same name, called on
// Microsoft's MCP server with the caller's connection.
type Tool struct {
	Name        string
	Title       string
	Description string
	Toolset     string
	// Server is the Sentinel MCP server (sentinel.ServerTriage or
	// sentinel.ServerDataExploration); Resource the Entra resource of its
	// access token (connection.DefenderMCP or connection.SentinelPlatform).
	Server   string
	Resource string

	params []param
	// check runs after the parameters passed, for rules that span several.
	check  func(args map[string]any) *Error
	schema json.RawMessage
}

// InputSchema is the JSON schema of the tool's arguments.
func (t *Tool) InputSchema() json.RawMessage { return t.schema }

// Parameter bounds of the tools (MICROSOFT.md §3 for the KQL limit; the
// others are Clarion's, chosen to keep answers usable by an agent).
const (
	MaxKQL        = sentinel.MaxQueryChars // characters of KQL in one call
	MaxTop        = 100                    // items per page of the list tools
	MaxSkip       = 100000
	MaxSearchText = 256
	MaxTableNames = 20
)

// Graph enum spellings (Microsoft Graph security.incident / security.alert).
var (
	severities      = []string{"informational", "low", "medium", "high"}
	incidentStatus  = []string{"active", "inProgress", "awaitingAction", "resolved", "redirected"}
	alertStatus     = []string{"new", "inProgress", "resolved"}
	classifications = []string{"unknown", "falsePositive", "truePositive", "informationalExpectedActivity"}
	determinations  = []string{"unknown", "apt", "malware", "securityPersonnel", "securityTesting", "unwantedSoftware", "other",
		"multiStagedAttack", "compromisedAccount", "phishing", "maliciousUserActivity", "notMalicious",
		"notEnoughDataToValidate", "confirmedUserActivity", "lineOfBusinessApplication"}
	incidentOrder = []string{"createdDateTime desc", "createdDateTime asc", "lastUpdateDateTime desc", "lastUpdateDateTime asc",
		"severity desc", "severity asc"}
)

func triage(name, title, desc string, params ...param) *Tool {
	return &Tool{Name: name, Title: title, Description: desc, Toolset: ToolsetTriage,
		Server: sentinel.ServerTriage, Resource: connection.DefenderMCP, params: params}
}

func lake(name, title, desc string, params ...param) *Tool {
	return &Tool{Name: name, Title: title, Description: desc, Toolset: ToolsetDataLake,
		Server: sentinel.ServerDataExploration, Resource: connection.SentinelPlatform, params: params}
}

var (
	pFileHash = param{name: "fileHash", kind: kHash, required: true, desc: "SHA-1 (40 hex digits), SHA-256 (64) or MD5 (32) of the file."}
	pIP       = param{name: "ipAddress", kind: kIP, required: true, desc: "An IPv4 or IPv6 address, e.g. 203.0.113.45."}
	pMachine  = param{name: "ID", kind: kMachineID, required: true, desc: "The Defender for Endpoint device id (40 hex digits) or the device's computer name."}
	pUser     = param{name: "ID", kind: kUserID, required: true, desc: "The user: user principal name (e.g. megan.bowen@contoso.com), account name, SID or Entra object id."}
	pAfter    = param{name: "createdAfter", kind: kDateTime, desc: "Only items created at or after this time (ISO 8601, e.g. 2024-06-21T00:00:00Z)."}
	pBefore   = param{name: "createdBefore", kind: kDateTime, desc: "Only items created before this time (ISO 8601)."}
	pSeverity = param{name: "Severity", kind: kEnum, enum: severities, desc: "Only this severity."}
	pSkip     = param{name: "skip", kind: kInt, min: 0, max: MaxSkip, desc: "How many items to skip (paging)."}
	pTop      = param{name: "top", kind: kInt, min: 1, max: MaxTop, desc: "How many items to return (1-100; default 20)."}
)

// afterBefore checks that createdAfter comes before createdBefore.
func afterBefore(args map[string]any) *Error {
	a, _ := args["createdAfter"].(string)
	b, _ := args["createdBefore"].(string)
	if a != "" && b != "" && a >= b { // both normalised to RFC 3339 UTC
		return invalid("createdAfter", "createdAfter must be earlier than createdBefore.")
	}
	return nil
}

var triageTools = []*Tool{
	withCheck(triage("ListIncidents", "List incidents",
		"Lists Microsoft Sentinel and Defender XDR security incidents (Microsoft Graph security.incident), newest first, filtered by creation time, severity, status, assigned analyst, classification, determination and text. Each incident's \"id\" is its Defender incident number; its Sentinel id (GUID), which GetIncidentById takes, is given alongside. Set includeAlertsData to get each incident's alerts with their evidence (users, devices, files, IP addresses).",
		pAfter, pBefore, pSeverity,
		param{name: "Status", kind: kEnum, enum: incidentStatus, desc: "Only incidents with this status."},
		param{name: "AssignedTo", kind: kString, maxLen: MaxSearchText, desc: "Only incidents assigned to this analyst (user principal name)."},
		param{name: "Classification", kind: kEnum, enum: classifications, desc: "Only incidents with this classification."},
		param{name: "Determination", kind: kEnum, enum: determinations, desc: "Only incidents with this determination."},
		param{name: "orderBy", kind: kEnum, enum: incidentOrder, desc: "Sort order (default createdDateTime desc)."},
		param{name: "Search", kind: kString, maxLen: MaxSearchText, desc: "Text to look for in the incident's name and description."},
		param{name: "includeAlertsData", kind: kBool, desc: "Include each incident's alerts and their evidence."},
		pSkip, pTop), afterBefore),
	triage("GetIncidentById", "Get incident by id",
		"Gets one incident (Microsoft Graph security.incident) by its Sentinel incident id: the incident's GUID or its numeric Sentinel incident number. The Defender incident number shown in the Defender portal is not a Sentinel id: if a lookup by number finds nothing, use ListIncidents to find the incident and its Sentinel id.",
		param{name: "incidentID", kind: kIncidentID, required: true, desc: "The Sentinel incident id: a GUID, or the numeric Sentinel incident number."},
		param{name: "includeAlertsData", kind: kBool, desc: "Include the incident's alerts and their evidence."}),
	withCheck(triage("ListAlerts", "List alerts",
		"Lists security alerts (Microsoft Graph security.alert) from Defender XDR and Sentinel, newest first, filtered by creation time, severity and status.",
		pAfter, pBefore, pSeverity,
		param{name: "status", kind: kEnum, enum: alertStatus, desc: "Only alerts with this status."},
		pSkip, pTop), afterBefore),
	triage("GetAlertByID", "Get alert by id",
		"Gets one security alert (Microsoft Graph security.alert) by its id, with its evidence: devices, users, files, processes, IP addresses.",
		param{name: "AlertID", kind: kAlertID, required: true, desc: "The alert id, e.g. da637551227677560813_-961444813 or a GUID."}),
	triage("RunAdvancedHuntingQuery", "Run advanced hunting query",
		"Runs one KQL query over the Defender XDR advanced hunting tables (DeviceProcessEvents, DeviceNetworkEvents, DeviceLogonEvents, DeviceFileEvents, DeviceInfo, AlertInfo, AlertEvidence, IdentityLogonEvents, EmailEvents, …) and returns the schema and result rows. At most 800 characters of KQL; filter and project in the query to keep the answer small. Use FetchAdvancedHuntingTablesDetailedSchema to learn the columns.",
		param{name: "kqlQuery", kind: kKQL, required: true, desc: "One KQL query, at most 800 characters."},
		param{name: "timestamp", kind: kDateTime, desc: "Reference time of the query (ISO 8601): now() and ago() count from it. Default: now."}),
	triage("FetchAdvancedHuntingTablesOverview", "Advanced hunting tables overview",
		"Lists advanced hunting tables with a description of each: all tables when tableNames is empty.",
		param{name: "tableNames", kind: kTableNames, desc: "Table names, e.g. [\"DeviceProcessEvents\"]; empty for all tables."}),
	triage("FetchAdvancedHuntingTablesDetailedSchema", "Advanced hunting table schemas",
		"Gets the detailed schema of advanced hunting tables: every column with its type and description.",
		param{name: "tableNames", kind: kTableNames, required: true, desc: "Table names, e.g. [\"DeviceProcessEvents\", \"AlertEvidence\"]."}),
	triage("GetDefenderFileInfo", "File profile",
		"Gets a file's profile from Microsoft Defender for Endpoint: names, size, type, publisher, signer, global prevalence and Microsoft's determination.",
		pFileHash),
	triage("GetDefenderFileStatistics", "File statistics",
		"Gets a file's prevalence in the organization and worldwide, with when it was first and last seen.",
		pFileHash),
	triage("GetDefenderFileAlerts", "File alerts",
		"Lists the alerts related to a file (Microsoft Graph security.alert).",
		pFileHash),
	triage("GetDefenderFileRelatedMachines", "Devices with a file",
		"Lists the devices a file was observed on (Defender for Endpoint machines).",
		pFileHash),
	triage("GetDefenderIpAlerts", "IP address alerts",
		"Lists the alerts related to an IP address (Microsoft Graph security.alert).",
		pIP),
	triage("GetDefenderIpStatistics", "IP address statistics",
		"Gets an IP address's prevalence in the organization: how many devices communicated with it, first and last seen.",
		pIP),
	triage("FindDefenderMachineByIp", "Find device by IP address",
		"Finds the devices that had an internal IP address around a given time (within 15 minutes; the time must be within the last 30 days).",
		pIP, param{name: "timestamp", kind: kDateTime, required: true, desc: "When the device had the address (ISO 8601)."}),
	triage("GetDefenderMachine", "Device",
		"Gets a device from Microsoft Defender for Endpoint: computer name, OS, health, risk score, exposure level, IP addresses, tags, first and last seen.",
		pMachine),
	triage("GetDefenderMachineAlerts", "Device alerts",
		"Lists the alerts related to a device (Microsoft Graph security.alert).",
		pMachine),
	triage("GetDefenderMachineLoggedOnUsers", "Device users",
		"Lists the accounts that signed in to a device recently, with logon types and first and last seen.",
		pMachine),
	triage("GetDefenderMachineVulnerabilities", "Device vulnerabilities",
		"Lists the vulnerabilities (CVEs) found on a device, with severity, CVSS score and known exploits.",
		pMachine),
	triage("ListUserRelatedAlerts", "User alerts",
		"Lists the alerts related to a user (Microsoft Graph security.alert).",
		pUser),
	triage("ListUserRelatedMachines", "User devices (sign-in sessions)",
		"Lists the devices where a user has active or recent sign-in sessions (Defender for Endpoint machines).",
		pUser),
}

var lakeTools = []*Tool{
	lake("query_lake", "Query the data lake",
		"Runs one KQL query against a Microsoft Sentinel data lake workspace (sign-in logs, audit logs, security incidents and alerts, partner sources, …) and returns the result set as {\"tables\":[{\"name\",\"columns\",\"rows\"}]}. At most 800 characters of KQL; filter, project and summarize in the query to keep the answer small. Use search_tables to find tables and columns.",
		param{name: "query", kind: kKQL, required: true, desc: "One KQL query, at most 800 characters."},
		param{name: "workspaceId", kind: kGUID, desc: "The Sentinel workspace id (GUID) from list_sentinel_workspaces; default the tenant's first workspace."}),
	lake("search_tables", "Search the table catalog",
		"Searches the data lake's table catalog for tables relevant to a description and returns their schemas (columns and types), to write query_lake queries.",
		param{name: "query", kind: kString, required: true, maxLen: 1000, desc: "What you are looking for, in words, e.g. \"failed sign-ins\" or \"Defender process events\"."},
		param{name: "workspaceId", kind: kGUID, desc: "The Sentinel workspace id (GUID); default the tenant's first workspace."}),
	lake("list_sentinel_workspaces", "List Sentinel workspaces",
		"Lists the Microsoft Sentinel workspaces of the tenant that are attached to the data lake: name and id pairs."),
}

func withCheck(t *Tool, check func(map[string]any) *Error) *Tool {
	t.check = check
	return t
}

// Toolsets are Clarion's toolsets, in display order.
var Toolsets = []*Toolset{
	{ID: ToolsetTriage, Name: "MS Sentinel Triage",
		Description: "List and fetch Sentinel and Defender incidents and alerts, run advanced hunting across Defender tables, and look up files, IP addresses, users, devices and users' sign-in sessions.",
		Tools:       triageTools},
	{ID: ToolsetDataLake, Name: "MS Sentinel Data Lake",
		Description: "Run KQL queries against the Microsoft Sentinel data lake (sign-ins, audit logs, partner sources) and search the table catalog for cross-source hunting.",
		Tools:       lakeTools},
}

var toolsByName = func() map[string]*Tool {
	m := map[string]*Tool{}
	for _, ts := range Toolsets {
		for _, t := range ts.Tools {
			if m[t.Name] != nil {
				panic("tools: two tools named " + t.Name)
			}
			t.schema = schemaOf(t.params)
			m[t.Name] = t
		}
	}
	return m
}()

// ToolByName returns the tool with this exact name.
func ToolByName(name string) (*Tool, bool) {
	t, ok := toolsByName[name]
	return t, ok
}

// ToolsetByID returns a toolset.
func ToolsetByID(id string) (*Toolset, bool) {
	for _, ts := range Toolsets {
		if ts.ID == id {
			return ts, true
		}
	}
	return nil, false
}

// ToolsOf lists the tools of the given toolsets, in catalog order; unknown
// toolset ids are ignored.
func ToolsOf(toolsetIDs []string) []*Tool {
	var out []*Tool
	for _, ts := range Toolsets {
		if slices.Contains(toolsetIDs, ts.ID) {
			out = append(out, ts.Tools...)
		}
	}
	return out
}
