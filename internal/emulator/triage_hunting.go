package emulator

import (
	"fmt"
	"strings"
	"time"

	"github.com/clarion/sentinel/internal/emulator/kql"
)

// Advanced hunting: the Defender XDR tables RunAdvancedHuntingQuery reads
// and FetchAdvancedHuntingTables* describe. Their rows are generated from the
// tenant's Defender view (inventory, incidents, alerts) at the emulator's
// time, plus any rows of the same table names added to the tenant's
// workspaces (AddRows, the control API), so that tests can plant events.

// columnDocs describes the columns the hunting tables share.
var columnDocs = map[string]string{
	"Timestamp":                    "Date and time when the event was recorded",
	"DeviceId":                     "Unique identifier for the device in the service",
	"DeviceName":                   "Fully qualified domain name (FQDN) of the device",
	"ActionType":                   "Type of activity that triggered the event",
	"AccountName":                  "User name of the account",
	"AccountDomain":                "Domain of the account",
	"AccountSid":                   "Security Identifier (SID) of the account",
	"AccountUpn":                   "User principal name (UPN) of the account",
	"AccountObjectId":              "Unique identifier for the account in Microsoft Entra ID",
	"FileName":                     "Name of the file that the recorded action was applied to",
	"FolderPath":                   "Folder containing the file that the recorded action was applied to",
	"SHA1":                         "SHA-1 of the file that the recorded action was applied to",
	"SHA256":                       "SHA-256 of the file that the recorded action was applied to",
	"MD5":                          "MD5 hash of the file that the recorded action was applied to",
	"ProcessCommandLine":           "Command line used to create the new process",
	"InitiatingProcessFileName":    "Name of the process that initiated the event",
	"InitiatingProcessCommandLine": "Command line used to run the process that initiated the event",
	"RemoteIP":                     "IP address that was being connected to",
	"RemotePort":                   "TCP port on the remote device that was being connected to",
	"RemoteUrl":                    "URL or fully qualified domain name (FQDN) that was being connected to",
	"LocalIP":                      "IP address assigned to the local device used during communication",
	"LogonType":                    "Type of logon session",
	"AlertId":                      "Unique identifier for the alert",
	"Title":                        "Title of the alert",
	"Severity":                     "Indicates the potential impact (high, medium, or low) of the threat indicator or breach activity identified by the alert",
	"ServiceSource":                "Product or service that provided the alert information",
	"DetectionSource":              "Detection technology or sensor that identified the notable component or activity",
	"AttackTechniques":             "MITRE ATT&CK techniques associated with the activity that triggered the alert",
	"EntityType":                   "Type of object, such as a file, a process, a device, or a user",
	"EvidenceRole":                 "How the entity is involved in an alert, indicating whether it is impacted or is merely related",
	"ReportId":                     "Unique identifier for the event",
	"IPAddress":                    "IP address assigned to the device during communication",
	"Application":                  "Application that performed the recorded action",
	"Protocol":                     "Protocol used during the communication",
}

func huntingSchema(name, desc string, spec ...string) TableSchema {
	t := TableSchema{Name: name, Description: desc, Columns: cols(spec...)}
	for i, c := range t.Columns {
		t.Columns[i].Description = columnDocs[c.Name]
	}
	return t
}

// huntingTables are the advanced hunting tables of the emulated tenant.
var huntingTables = []TableSchema{
	huntingSchema("AlertInfo", "Alerts from Microsoft Defender for Endpoint, Microsoft Defender for Office 365, Microsoft Defender for Cloud Apps, and Microsoft Defender for Identity, including severity information and threat categorization",
		"Timestamp:datetime", "AlertId", "Title", "Category", "Severity", "ServiceSource", "DetectionSource", "AttackTechniques"),
	huntingSchema("AlertEvidence", "Files, IP addresses, URLs, users, or devices associated with alerts",
		"Timestamp:datetime", "AlertId", "Title", "Categories", "AttackTechniques", "ServiceSource", "DetectionSource", "EntityType",
		"EvidenceRole", "FileName", "FolderPath", "SHA1", "SHA256", "RemoteIP", "AccountName", "AccountDomain", "AccountSid",
		"AccountObjectId", "AccountUpn", "DeviceId", "DeviceName"),
	huntingSchema("DeviceInfo", "Machine information, including OS information",
		"Timestamp:datetime", "DeviceId", "DeviceName", "OSPlatform", "OSVersion", "OSBuild:long", "PublicIP", "MachineGroup",
		"IsAzureADJoined:bool", "OnboardingStatus", "ExposureLevel", "SensorHealthState", "LoggedOnUsers:dynamic", "DeviceType", "ReportId:long"),
	huntingSchema("DeviceProcessEvents", "Process creation and related events",
		"Timestamp:datetime", "DeviceId", "DeviceName", "ActionType", "FileName", "FolderPath", "SHA1", "SHA256", "MD5",
		"ProcessId:long", "ProcessCommandLine", "AccountDomain", "AccountName", "AccountSid", "AccountUpn",
		"InitiatingProcessFileName", "InitiatingProcessCommandLine", "InitiatingProcessParentFileName", "ReportId:long"),
	huntingSchema("DeviceNetworkEvents", "Network connection and related events",
		"Timestamp:datetime", "DeviceId", "DeviceName", "ActionType", "RemoteIP", "RemotePort:int", "RemoteUrl", "LocalIP",
		"LocalPort:int", "Protocol", "InitiatingProcessFileName", "InitiatingProcessCommandLine", "ReportId:long"),
	huntingSchema("DeviceLogonEvents", "Sign-ins and other authentication events on devices",
		"Timestamp:datetime", "DeviceId", "DeviceName", "ActionType", "LogonType", "AccountDomain", "AccountName", "AccountSid",
		"RemoteIP", "RemoteDeviceName", "IsLocalAdmin:bool", "ReportId:long"),
	huntingSchema("DeviceFileEvents", "File creation, modification, and other file system events",
		"Timestamp:datetime", "DeviceId", "DeviceName", "ActionType", "FileName", "FolderPath", "SHA1", "SHA256", "MD5",
		"FileSize:long", "InitiatingProcessFileName", "InitiatingProcessAccountName", "ReportId:long"),
	huntingSchema("IdentityLogonEvents", "Authentication events on Active Directory and Microsoft online services",
		"Timestamp:datetime", "ActionType", "Application", "LogonType", "Protocol", "AccountName", "AccountDomain", "AccountUpn",
		"AccountObjectId", "IPAddress", "DeviceName", "Location", "ReportId:long"),
	huntingSchema("EmailEvents", "Microsoft 365 email events, including email delivery and blocking events",
		"Timestamp:datetime", "NetworkMessageId", "SenderFromAddress", "RecipientEmailAddress", "Subject", "DeliveryAction",
		"DeliveryLocation", "ThreatTypes", "DetectionMethods", "EmailDirection", "AttachmentCount:int", "UrlCount:int", "ReportId:long"),
}

func huntingTable(name string) (TableSchema, bool) {
	for _, t := range huntingTables {
		if strings.EqualFold(t.Name, name) {
			return t, true
		}
	}
	return TableSchema{}, false
}

// huntingRows generates the rows of every hunting table from the view.
func (v *defenderView) huntingRows() map[string][]Row {
	out := map[string][]Row{}
	now := v.now.UTC().Truncate(time.Second)
	report := int64(1000)
	add := func(table string, r Row) {
		report++
		r["ReportId"] = report
		out[table] = append(out[table], r)
	}
	for mi, m := range v.inv.machines {
		var logged []any
		for _, acct := range v.sessions[m] {
			if u := v.inv.user(acct); u != nil {
				logged = append(logged, map[string]any{"UserName": u.account, "DomainName": u.domain, "Sid": u.sid})
			}
		}
		add("DeviceInfo", Row{"Timestamp": m.lastSeen, "DeviceId": m.id, "DeviceName": m.dnsName, "OSPlatform": m.inv.os,
			"OSVersion": m.inv.osVer, "OSBuild": m.inv.osBuild, "PublicIP": "20.81.4." + fmt.Sprint(10+fnvNum(m.inv.name)%200),
			"MachineGroup": m.inv.group, "IsAzureADJoined": !strings.HasPrefix(m.inv.os, "Linux"), "OnboardingStatus": "Onboarded",
			"ExposureLevel": m.inv.exposure, "SensorHealthState": m.inv.health, "LoggedOnUsers": nonNil(logged),
			"DeviceType": map[bool]string{true: "Server", false: "Workstation"}[m.inv.group == "Servers"]})
		for ui, acct := range v.sessions[m] {
			u := v.inv.user(acct)
			if u == nil {
				continue
			}
			for d := range 3 {
				at := now.Add(-time.Duration(d*24+mi*3+ui) * time.Hour)
				logon := "Interactive"
				if strings.HasPrefix(acct, "svc-") {
					logon = "Service"
				}
				add("DeviceLogonEvents", Row{"Timestamp": at, "DeviceId": m.id, "DeviceName": m.dnsName, "ActionType": "LogonSuccess",
					"LogonType": logon, "AccountDomain": strings.ToLower(u.domain), "AccountName": u.account, "AccountSid": u.sid,
					"RemoteIP": "", "RemoteDeviceName": "", "IsLocalAdmin": u.admin})
				add("IdentityLogonEvents", Row{"Timestamp": at.Add(-2 * time.Minute), "ActionType": "LogonSuccess", "Application": "Active Directory",
					"LogonType": "Resource access", "Protocol": "Kerberos", "AccountName": u.account, "AccountDomain": strings.ToLower(u.domain),
					"AccountUpn": u.upn, "AccountObjectId": u.objectID, "IPAddress": m.inv.ip, "DeviceName": m.dnsName, "Location": ""})
			}
		}
		for fi, name := range m.inv.files {
			f := v.inv.fileByName(name)
			if f == nil {
				continue
			}
			at := now.Add(-time.Duration(mi*5+fi*2+1) * time.Hour)
			acct := ""
			if len(m.inv.users) > 0 {
				acct = m.inv.users[0]
			}
			add("DeviceFileEvents", Row{"Timestamp": at, "DeviceId": m.id, "DeviceName": m.dnsName, "ActionType": "FileCreated",
				"FileName": f.inv.name, "FolderPath": f.inv.path + `\` + f.inv.name, "SHA1": f.sha1, "SHA256": f.sha256, "MD5": f.md5,
				"FileSize": f.inv.size, "InitiatingProcessFileName": firstNonEmpty(f.inv.parent, "explorer.exe"), "InitiatingProcessAccountName": acct})
			if f.inv.process != "" {
				r := Row{"Timestamp": at.Add(time.Minute), "DeviceId": m.id, "DeviceName": m.dnsName, "ActionType": "ProcessCreated",
					"FileName": f.inv.name, "FolderPath": f.inv.path + `\` + f.inv.name, "SHA1": f.sha1, "SHA256": f.sha256, "MD5": f.md5,
					"ProcessId": int64(4000 + fnvNum(f.inv.name+m.id)%4000), "ProcessCommandLine": f.inv.process,
					"InitiatingProcessFileName": f.inv.parent, "InitiatingProcessCommandLine": f.inv.parent, "InitiatingProcessParentFileName": "explorer.exe"}
				if u := v.inv.user(acct); u != nil {
					r["AccountDomain"], r["AccountName"], r["AccountSid"], r["AccountUpn"] = strings.ToLower(u.domain), u.account, u.sid, u.upn
				}
				add("DeviceProcessEvents", r)
			}
		}
		for pi, peer := range m.inv.peers {
			at := now.Add(-time.Duration(mi*2+pi+1)*time.Hour - 17*time.Minute)
			port := int64(443)
			if strings.HasSuffix(peer, ".77") {
				port = 3389
			}
			add("DeviceNetworkEvents", Row{"Timestamp": at, "DeviceId": m.id, "DeviceName": m.dnsName, "ActionType": "ConnectionSuccess",
				"RemoteIP": peer, "RemotePort": port, "RemoteUrl": "", "LocalIP": m.inv.ip, "LocalPort": int64(49152 + pi*7 + mi),
				"Protocol": "Tcp", "InitiatingProcessFileName": "powershell.exe", "InitiatingProcessCommandLine": "powershell.exe"})
		}
	}
	for _, a := range v.alerts {
		g := a.graph
		techs := fmt.Sprint(g["mitreTechniques"])
		add("AlertInfo", Row{"Timestamp": a.created, "AlertId": g["id"], "Title": g["title"], "Category": g["category"],
			"Severity": g["severity"], "ServiceSource": g["productName"], "DetectionSource": g["detectionSource"], "AttackTechniques": techs})
		base := func(entity, role string) Row {
			return Row{"Timestamp": a.created, "AlertId": g["id"], "Title": g["title"], "Categories": fmt.Sprintf(`["%s"]`, g["category"]),
				"AttackTechniques": techs, "ServiceSource": g["productName"], "DetectionSource": g["detectionSource"],
				"EntityType": entity, "EvidenceRole": role}
		}
		for _, m := range a.machines {
			r := base("Machine", "Impacted")
			r["DeviceId"], r["DeviceName"] = m.id, m.dnsName
			add("AlertEvidence", r)
		}
		for _, u := range a.users {
			r := base("User", "Impacted")
			r["AccountName"], r["AccountDomain"], r["AccountSid"], r["AccountObjectId"], r["AccountUpn"] = u.account, strings.ToLower(u.domain), u.sid, u.objectID, u.upn
			add("AlertEvidence", r)
		}
		for _, f := range a.files {
			r := base("File", "Related")
			r["FileName"], r["FolderPath"], r["SHA1"], r["SHA256"] = f.inv.name, f.inv.path, f.sha1, f.sha256
			add("AlertEvidence", r)
		}
		for _, ip := range a.ips {
			r := base("Ip", "Related")
			r["RemoteIP"] = ip
			add("AlertEvidence", r)
		}
		if strings.EqualFold(fmt.Sprint(g["serviceSource"]), "microsoftDefenderForOffice365") {
			for _, u := range a.users {
				add("EmailEvents", Row{"Timestamp": a.created.Add(-15 * time.Minute), "NetworkMessageId": nameGUID("mail:" + fmt.Sprint(g["id"]) + u.upn),
					"SenderFromAddress": "billing@invoices-example.net", "RecipientEmailAddress": u.upn, "Subject": "Invoice 0423 overdue",
					"DeliveryAction": "Delivered", "DeliveryLocation": "Inbox/folder", "ThreatTypes": "Phish", "DetectionMethods": `{"Phish":["URL detonation"]}`,
					"EmailDirection": "Inbound", "AttachmentCount": int64(1), "UrlCount": int64(2)})
			}
		}
	}
	return out
}

// huntingData returns every hunting table as a KQL table: generated rows,
// then the rows planted in the tenant's workspaces (columns matched by name;
// a planted row's TimeGenerated stands in for a missing Timestamp).
func (v *defenderView) huntingData() map[string]*kql.Table {
	gen := v.huntingRows()
	out := map[string]*kql.Table{}
	for _, schema := range huntingTables {
		t := &kql.Table{Name: schema.Name, Columns: schema.kqlColumns()}
		rows := append(gen[schema.Name], v.hunting[schema.Name]...)
		for _, r := range rows {
			if _, ok := r["Timestamp"]; !ok {
				r = cloneRow(r)
				r["Timestamp"] = r["TimeGenerated"]
			}
			vals := make([]any, len(schema.Columns))
			for i, c := range schema.Columns {
				nv, err := kql.ToValue(c.Type, r[c.Name])
				if err != nil {
					nv, _ = kql.ToValue(c.Type, nil)
				}
				vals[i] = nv
			}
			t.Rows = append(t.Rows, vals)
		}
		out[schema.Name] = t
	}
	return out
}

// huntingType is the type name advanced hunting reports for a column.
func huntingType(t kql.Type) string {
	switch t {
	case kql.TypeDatetime:
		return "DateTime"
	case kql.TypeInt:
		return "Int32"
	case kql.TypeLong:
		return "Int64"
	case kql.TypeReal:
		return "Double"
	case kql.TypeBool:
		return "Boolean"
	case kql.TypeDynamic:
		return "Object"
	case kql.TypeTimespan:
		return "TimeSpan"
	}
	return "String"
}

// maxHuntingRows is advanced hunting's result row limit.
const maxHuntingRows = 100000

// RunHuntingQuery runs one advanced hunting query for a tenant, with now()
// at the emulator's time (or at, when not zero), and answers in Microsoft
// Graph's huntingQueryResults shape: {"schema":[{name,type}],"results":[{…}]}.
func (e *Emulator) RunHuntingQuery(tenantID, query string, at time.Time) (map[string]any, error) {
	v, err := e.defenderView(tenantID)
	if err != nil {
		return nil, err
	}
	tables := v.huntingData()
	now := v.now
	if !at.IsZero() {
		now = at
	}
	res, err := kql.Run(query, kql.Options{Now: now, Tables: func(name string) (*kql.Table, bool) {
		t, ok := tables[name]
		return t, ok
	}})
	if err != nil {
		return nil, err
	}
	if len(res.Rows) > maxHuntingRows {
		return nil, &kql.Error{Semantic: true, Msg: fmt.Sprintf("Query result exceeded the limit of %d rows. Reduce it with where, summarize or take.", maxHuntingRows)}
	}
	schema := make([]any, len(res.Columns))
	for i, c := range res.Columns {
		schema[i] = map[string]any{"name": c.Name, "type": huntingType(c.Type)}
	}
	results := make([]any, len(res.Rows))
	for i, r := range res.Rows {
		obj := map[string]any{}
		for j, val := range r {
			obj[res.Columns[j].Name] = kql.ToJSON(res.Columns[j].Type, val)
		}
		results[i] = obj
	}
	return map[string]any{"schema": schema, "results": results}, nil
}
