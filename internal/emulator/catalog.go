package emulator

import (
	"slices"
	"strings"
	"unicode"

	"github.com/clarion/sentinel/internal/emulator/kql"
)

// TableColumn is one column of a table schema.
type TableColumn struct {
	Name        string   `json:"name"`
	Type        kql.Type `json:"type"`
	Description string   `json:"description,omitempty"`
}

// TableSchema is a table of the emulated data lake, as search_tables
// returns it.
type TableSchema struct {
	Name        string        `json:"name"`
	Description string        `json:"description"`
	Columns     []TableColumn `json:"columns"`
}

func (t TableSchema) kqlColumns() []kql.Column {
	out := make([]kql.Column, len(t.Columns))
	for i, c := range t.Columns {
		out[i] = kql.Column{Name: c.Name, Type: c.Type}
	}
	return out
}

// cols builds columns from "Name:type" pairs (type defaults to string).
func cols(spec ...string) []TableColumn {
	out := make([]TableColumn, 0, len(spec))
	for _, s := range spec {
		name, typ, ok := strings.Cut(s, ":")
		if !ok {
			typ = "string"
		}
		out = append(out, TableColumn{Name: name, Type: kql.Type(typ)})
	}
	return out
}

// SecurityIncidentTable is the schema of the SecurityIncident table
// (MICROSOFT.md §4), in Log Analytics column order.
var SecurityIncidentTable = TableSchema{
	Name:        "SecurityIncident",
	Description: "Microsoft Sentinel incidents. A new row is written every time an incident is created or updated; take the latest row per IncidentName (summarize arg_max(LastModifiedTime, *) by IncidentName).",
	Columns: []TableColumn{
		{"TenantId", kql.TypeString, "The Log Analytics workspace ID."},
		{"TimeGenerated", kql.TypeDatetime, "When the row was written."},
		{"IncidentName", kql.TypeString, "The incident's GUID: its unique, stable identifier."},
		{"IncidentNumber", kql.TypeInt, "Sequential number of the incident in the workspace."},
		{"Title", kql.TypeString, "Title of the incident."},
		{"Description", kql.TypeString, "Description of the incident."},
		{"Severity", kql.TypeString, "High, Medium, Low or Informational."},
		{"Status", kql.TypeString, "New, Active or Closed."},
		{"Classification", kql.TypeString, "Undetermined, TruePositive, BenignPositive or FalsePositive."},
		{"ClassificationComment", kql.TypeString, "Comment given when the incident was classified."},
		{"ClassificationReason", kql.TypeString, "Reason of the classification."},
		{"Owner", kql.TypeDynamic, "The assigned owner: objectId, email, assignedTo, userPrincipalName."},
		{"ProviderName", kql.TypeString, "Azure Sentinel or Microsoft XDR."},
		{"ProviderIncidentId", kql.TypeString, "The incident id at the provider (the Defender incident id for Microsoft XDR)."},
		{"FirstActivityTime", kql.TypeDatetime, "Time of the first activity of the incident's alerts."},
		{"LastActivityTime", kql.TypeDatetime, "Time of the last activity of the incident's alerts."},
		{"FirstModifiedTime", kql.TypeDatetime, "When the incident was first modified."},
		{"LastModifiedTime", kql.TypeDatetime, "When the incident was last modified (this row)."},
		{"CreatedTime", kql.TypeDatetime, "When the incident was created."},
		{"ClosedTime", kql.TypeDatetime, "When the incident was closed."},
		{"AlertIds", kql.TypeDynamic, "System alert ids of the incident's alerts."},
		{"BookmarkIds", kql.TypeDynamic, "Ids of the bookmarks attached to the incident."},
		{"Comments", kql.TypeDynamic, "Comments of the incident."},
		{"Tasks", kql.TypeDynamic, "Tasks of the incident."},
		{"Labels", kql.TypeDynamic, "Labels (tags) of the incident."},
		{"RelatedAnalyticRuleIds", kql.TypeDynamic, "Analytics rules that created the incident's alerts."},
		{"AdditionalData", kql.TypeDynamic, "alertsCount, bookmarksCount, commentsCount, alertProductNames, tactics, techniques, providerIncidentUrl."},
		{"IncidentUrl", kql.TypeString, "Link to the incident in the Azure portal."},
		{"ModifiedBy", kql.TypeString, "Who or what last modified the incident."},
		{"SourceSystem", kql.TypeString, "Azure."},
		{"Type", kql.TypeString, "SecurityIncident."},
	},
}

// catalog is every table of a workspace: schemas for search_tables and
// for KQL. Only SecurityIncident holds rows unless rows are added.
var catalog = []TableSchema{
	SecurityIncidentTable,
	{
		Name:        "SecurityAlert",
		Description: "Alerts from Microsoft Sentinel analytics rules and connected security products (Defender for Cloud, Defender for Endpoint, Entra ID Protection...).",
		Columns: cols("TenantId", "TimeGenerated:datetime", "DisplayName", "AlertName", "AlertSeverity", "Description",
			"ProviderName", "VendorName", "VendorOriginalId", "SystemAlertId", "ResourceId", "SourceComputerId", "AlertType",
			"ConfidenceLevel", "ConfidenceScore:real", "IsIncident:bool", "StartTime:datetime", "EndTime:datetime",
			"ProcessingEndTime:datetime", "RemediationSteps", "ExtendedProperties", "Entities", "SourceSystem",
			"WorkspaceSubscriptionId", "WorkspaceResourceGroup", "ExtendedLinks", "ProductName", "ProductComponentName",
			"AlertLink", "Status", "CompromisedEntity", "Tactics", "Techniques", "SubTechniques", "Type"),
	},
	{
		Name:        "SigninLogs",
		Description: "Microsoft Entra ID interactive user sign-ins: user, application, IP address, location, result, conditional access and risk.",
		Columns: cols("TenantId", "TimeGenerated:datetime", "OperationName", "ResultType", "ResultDescription", "Identity",
			"UserPrincipalName", "UserDisplayName", "UserId", "AppDisplayName", "AppId", "IPAddress", "Location",
			"LocationDetails:dynamic", "ClientAppUsed", "DeviceDetail:dynamic", "ConditionalAccessStatus",
			"AuthenticationRequirement", "RiskLevelDuringSignIn", "RiskState", "Status:dynamic", "UserAgent", "CorrelationId", "Type"),
	},
	{
		Name:        "AuditLogs",
		Description: "Microsoft Entra ID audit events: changes to users, groups, applications, roles and policies.",
		Columns: cols("TenantId", "TimeGenerated:datetime", "OperationName", "Category", "Result", "ResultReason",
			"ActivityDisplayName", "ActivityDateTime:datetime", "InitiatedBy:dynamic", "TargetResources:dynamic",
			"AdditionalDetails:dynamic", "LoggedByService", "CorrelationId", "Identity", "Type"),
	},
	{
		Name:        "DeviceProcessEvents",
		Description: "Microsoft Defender for Endpoint process creation events: process, command line, hashes, account and parent process on each device.",
		Columns: cols("TenantId", "Timestamp:datetime", "TimeGenerated:datetime", "DeviceId", "DeviceName", "ActionType", "FileName",
			"FolderPath", "SHA1", "SHA256", "MD5", "ProcessId:long", "ProcessCommandLine", "ProcessCreationTime:datetime",
			"AccountDomain", "AccountName", "AccountSid", "AccountUpn", "InitiatingProcessFileName",
			"InitiatingProcessCommandLine", "InitiatingProcessId:long", "InitiatingProcessParentFileName", "ReportId:long", "Type"),
	},
	{
		Name:        "DeviceNetworkEvents",
		Description: "Microsoft Defender for Endpoint network connections of devices: remote IP, port and URL, and the initiating process.",
		Columns: cols("TenantId", "Timestamp:datetime", "TimeGenerated:datetime", "DeviceId", "DeviceName", "ActionType", "RemoteIP",
			"RemotePort:int", "RemoteUrl", "LocalIP", "LocalPort:int", "Protocol", "InitiatingProcessFileName",
			"InitiatingProcessCommandLine", "ReportId:long", "Type"),
	},
	{
		Name:        "DeviceLogonEvents",
		Description: "Microsoft Defender for Endpoint sign-ins and other authentication events on devices.",
		Columns: cols("TenantId", "Timestamp:datetime", "TimeGenerated:datetime", "DeviceId", "DeviceName", "ActionType", "LogonType",
			"AccountDomain", "AccountName", "AccountSid", "RemoteIP", "RemoteDeviceName", "IsLocalAdmin:bool", "ReportId:long", "Type"),
	},
	{
		Name:        "DeviceFileEvents",
		Description: "Microsoft Defender for Endpoint file creation, modification and other file system events.",
		Columns: cols("TenantId", "Timestamp:datetime", "TimeGenerated:datetime", "DeviceId", "DeviceName", "ActionType", "FileName",
			"FolderPath", "SHA1", "SHA256", "MD5", "FileSize:long", "InitiatingProcessFileName",
			"InitiatingProcessAccountName", "ReportId:long", "Type"),
	},
	{
		Name:        "EmailEvents",
		Description: "Microsoft Defender for Office 365 email delivery and blocking events: sender, recipient, subject, threats and delivery action.",
		Columns: cols("TenantId", "Timestamp:datetime", "TimeGenerated:datetime", "NetworkMessageId", "InternetMessageId",
			"SenderFromAddress", "SenderMailFromAddress", "RecipientEmailAddress", "Subject", "DeliveryAction",
			"DeliveryLocation", "ThreatTypes", "DetectionMethods", "EmailDirection", "AttachmentCount:int", "UrlCount:int", "ReportId:long", "Type"),
	},
	{
		Name:        "IdentityLogonEvents",
		Description: "Microsoft Defender for Identity authentication events against on-premises Active Directory and Microsoft online services.",
		Columns: cols("TenantId", "Timestamp:datetime", "TimeGenerated:datetime", "ActionType", "Application", "LogonType", "Protocol",
			"AccountName", "AccountDomain", "AccountUpn", "AccountObjectId", "IPAddress", "DeviceName", "Location", "ReportId:long", "Type"),
	},
	{
		Name:        "OfficeActivity",
		Description: "Microsoft 365 (Exchange, SharePoint, OneDrive, Teams) audit activity.",
		Columns: cols("TenantId", "TimeGenerated:datetime", "RecordType", "Operation", "UserId", "ClientIP", "OfficeWorkload",
			"ResultStatus", "OfficeObjectId", "SourceFileName", "Site_Url", "Type"),
	},
	{
		Name:        "AzureActivity",
		Description: "Azure Resource Manager control-plane operations on subscriptions and resources.",
		Columns: cols("TenantId", "TimeGenerated:datetime", "OperationNameValue", "CategoryValue", "ActivityStatusValue", "Caller",
			"CallerIpAddress", "ResourceGroup", "SubscriptionId", "_ResourceId", "Properties_d:dynamic", "Type"),
	},
	{
		Name:        "SecurityEvent",
		Description: "Windows security events collected from servers and workstations (logons, process creation, account changes).",
		Columns: cols("TenantId", "TimeGenerated:datetime", "Computer", "EventID:int", "Activity", "Account", "AccountType",
			"LogonType:int", "IpAddress", "Process", "CommandLine", "SubjectUserName", "TargetUserName", "Type"),
	},
	{
		Name:        "CommonSecurityLog",
		Description: "Common Event Format (CEF) logs from firewalls, proxies and other network security appliances.",
		Columns: cols("TenantId", "TimeGenerated:datetime", "DeviceVendor", "DeviceProduct", "Activity", "SourceIP",
			"DestinationIP", "DestinationPort:int", "DeviceAction", "LogSeverity", "Message", "RequestURL", "Type"),
	},
	{
		Name:        "Syslog",
		Description: "Syslog messages from Linux machines and network devices.",
		Columns: cols("TenantId", "TimeGenerated:datetime", "Computer", "Facility", "SeverityLevel", "SyslogMessage",
			"ProcessName", "HostIP", "Type"),
	},
	{
		Name:        "BehaviorAnalytics",
		Description: "Microsoft Sentinel UEBA: user and entity activities enriched with anomaly insights and an investigation priority.",
		Columns: cols("TenantId", "TimeGenerated:datetime", "UserPrincipalName", "ActivityType", "ActionType", "SourceIPAddress",
			"InvestigationPriority:int", "ActivityInsights:dynamic", "Type"),
	},
	{
		Name:        "ThreatIntelligenceIndicator",
		Description: "Threat intelligence indicators (IP addresses, URLs, domains, file hashes) imported into Microsoft Sentinel.",
		Columns: cols("TenantId", "TimeGenerated:datetime", "IndicatorId", "ThreatType", "NetworkIP", "Url", "DomainName",
			"FileHashValue", "ConfidenceScore:int", "ExpirationDateTime:datetime", "Active:bool", "Description", "Type"),
	},
}

func tableSchema(name string) (TableSchema, bool) {
	for _, t := range catalog {
		if t.Name == name {
			return t, true
		}
	}
	return TableSchema{}, false
}

// Tables lists the schemas of every table of a workspace.
func Tables() []TableSchema { return slices.Clone(catalog) }

// searchTables returns the tables matching the keywords of query, best
// first: a keyword in the table name weighs most, then in the description,
// then in a column name. An empty query matches every table.
func searchTables(query string) []TableSchema {
	words := strings.FieldsFunc(strings.ToLower(query), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '_'
	})
	type scored struct {
		t     TableSchema
		score int
	}
	var hits []scored
	for _, t := range catalog {
		score := 0
		name, desc := strings.ToLower(t.Name), strings.ToLower(t.Description)
		for _, w := range words {
			if len(w) < 2 {
				continue
			}
			if strings.Contains(name, w) {
				score += 5
			}
			if strings.Contains(desc, w) {
				score += 2
			}
			for _, c := range t.Columns {
				if strings.Contains(strings.ToLower(c.Name), w) {
					score++
					break
				}
			}
		}
		if score > 0 || len(words) == 0 {
			hits = append(hits, scored{t, score})
		}
	}
	slices.SortStableFunc(hits, func(a, b scored) int { return b.score - a.score })
	out := make([]TableSchema, 0, len(hits))
	for i, h := range hits {
		if i == 10 {
			break
		}
		out = append(out, h.t)
	}
	return out
}
