package emulator

import (
	"fmt"
	"strings"
	"time"
)

// demoScenario is one kind of incident of the demo stream. {user},
// {host}, {ip} and {n} are filled in per incident.
type demoScenario struct {
	title, description string
	severity           string
	xdr                bool // from Microsoft Defender XDR (else a Sentinel analytics rule)
	products           []string
	tactics            []string
	techniques         []string
	alerts             int
}

// demoScenarios were written for the demo; they are not copies of the
// public samples.
var demoScenarios = []demoScenario{
	{
		title:       "Password spray against {n} accounts from {ip}",
		description: "Sign-in attempts against many accounts with a few common passwords came from {ip} within ten minutes. Most failed with error 50126 (invalid credentials); one succeeded for {user}. Review the successful sign-in and reset the password if it was not the user.",
		severity:    "High", products: []string{"Azure Sentinel"}, tactics: []string{"CredentialAccess"}, techniques: []string{"T1110"}, alerts: 2,
	},
	{
		title:       "Suspicious PowerShell download cradle on {host}",
		description: "powershell.exe started with an encoded command that downloads and runs a script from the internet (IEX (New-Object Net.WebClient).DownloadString). The parent process was winword.exe, opened by {user}.",
		severity:    "Medium", xdr: true, products: []string{"Microsoft Defender for Endpoint"}, tactics: []string{"Execution"}, techniques: []string{"T1059"}, alerts: 1,
	},
	{
		title:       "Impossible travel activity involving {user}",
		description: "{user} signed in from two countries 38 minutes apart, farther than anyone can travel in that time. The second sign-in came from {ip} with a browser never seen for this user.",
		severity:    "Medium", xdr: true, products: []string{"Microsoft Defender for Cloud Apps"}, tactics: []string{"InitialAccess"}, techniques: []string{"T1078"}, alerts: 1,
	},
	{
		title:       "Mass download of SharePoint files by {user}",
		description: "{user} downloaded 1,204 files from the Finance site in 15 minutes, 40 times more than usual for this account.",
		severity:    "Low", xdr: true, products: []string{"Microsoft Defender for Cloud Apps"}, tactics: []string{"Exfiltration"}, techniques: []string{"T1567"}, alerts: 1,
	},
	{
		title:       "Ransomware behavior detected on {host}",
		description: "A process on {host} renamed hundreds of documents with a new extension and dropped ransom notes (README_RESTORE.txt) in several folders. The device was isolated automatically. Investigate how the payload arrived and check other devices {user} used.",
		severity:    "High", xdr: true, products: []string{"Microsoft Defender for Endpoint", "Microsoft Defender Antivirus"}, tactics: []string{"Impact", "DefenseEvasion"}, techniques: []string{"T1486", "T1490"}, alerts: 4,
	},
	{
		title:       "Email with a malicious attachment delivered to {user}",
		description: "A message from an external sender with an HTML attachment that imitates the Microsoft 365 sign-in page was delivered to the inbox of {user} before it was detected. Zero-hour auto purge moved it to quarantine 12 minutes later.",
		severity:    "Medium", xdr: true, products: []string{"Microsoft Defender for Office 365"}, tactics: []string{"InitialAccess"}, techniques: []string{"T1566"}, alerts: 2,
	},
	{
		title:       "New inbox rule forwards mail of {user} to an external address",
		description: "An inbox rule created from {ip} forwards every message of {user} that contains 'invoice' or 'payment' to an external mailbox and marks it as read.",
		severity:    "Medium", products: []string{"Azure Sentinel"}, tactics: []string{"Collection", "Exfiltration"}, techniques: []string{"T1114"}, alerts: 1,
	},
	{
		title:       "Brute force attack against RDP on {host}",
		description: "More than 400 failed remote desktop logons (event 4625) against {host} from {ip} in the last hour, followed by one successful logon for the local administrator.",
		severity:    "Medium", products: []string{"Azure Sentinel"}, tactics: []string{"CredentialAccess", "InitialAccess"}, techniques: []string{"T1110", "T1133"}, alerts: 2,
	},
	{
		title:       "LSASS memory read by an unsigned process on {host}",
		description: "An unsigned binary in C:\\Users\\Public opened lsass.exe with read access, a common way to dump credentials. Signed-in accounts on {host} may be compromised, including {user}.",
		severity:    "High", xdr: true, products: []string{"Microsoft Defender for Endpoint"}, tactics: []string{"CredentialAccess"}, techniques: []string{"T1003"}, alerts: 1,
	},
	{
		title:       "Sign-in from an anonymous IP address for {user}",
		description: "{user} signed in from {ip}, a Tor exit node. Multifactor authentication was satisfied.",
		severity:    "Low", xdr: true, products: []string{"Microsoft Entra ID Protection"}, tactics: []string{"InitialAccess"}, techniques: []string{"T1090"}, alerts: 1,
	},
	{
		title:       "Global Administrator role assigned outside PIM to {user}",
		description: "A permanent Global Administrator assignment was made directly in Entra ID for {user}, bypassing Privileged Identity Management. The change was made from {ip}.",
		severity:    "High", products: []string{"Azure Sentinel"}, tactics: []string{"PrivilegeEscalation", "Persistence"}, techniques: []string{"T1098"}, alerts: 1,
	},
	{
		title:       "Multi-stage incident involving Initial access & Lateral movement on {host}",
		description: "Alerts from several products form one attack story: a phishing click by {user}, a malicious macro on {host}, then remote service creation on two servers with the same credentials.",
		severity:    "High", xdr: true, products: []string{"Microsoft Defender for Office 365", "Microsoft Defender for Endpoint", "Microsoft Defender for Identity"}, tactics: []string{"InitialAccess", "Execution", "LateralMovement"}, techniques: []string{"T1566", "T1204", "T1021"}, alerts: 6,
	},
	{
		title:       "Resource deployment from an unfamiliar location in subscription Production",
		description: "Twelve virtual machines with GPU sizes were created in an unused region from {ip} by a service principal that normally only reads storage. This pattern matches crypto-mining abuse.",
		severity:    "Low", xdr: true, products: []string{"Microsoft Defender for Cloud"}, tactics: []string{"Impact"}, techniques: []string{"T1496"}, alerts: 1,
	},
	{
		title:       "Test alert from Microsoft Defender for Endpoint on {host}",
		description: "The detection test command was run on {host}. No action is needed.",
		severity:    "Informational", xdr: true, products: []string{"Microsoft Defender for Endpoint"}, tactics: []string{"Execution"}, techniques: []string{}, alerts: 1,
	},
}

var (
	demoUsers = []string{"megan.bowen@contoso.onmicrosoft.com", "lee.gu@contoso.onmicrosoft.com", "nestor.wilke@contoso.onmicrosoft.com",
		"patti.fernandez@contoso.onmicrosoft.com", "lidia.holloway@contoso.onmicrosoft.com"}
	demoHosts = []string{"CONTOSO-WKS-014", "CONTOSO-WKS-027", "fin-sql-01", "CONTOSO-LT-203", "web-prod-02"}
	demoIPs   = []string{"203.0.113.45", "198.51.100.23", "192.0.2.181", "203.0.113.201", "198.51.100.77"}
)

// DemoIncident returns the n-th incident of an endless, varied stream of
// realistic incidents for the demo, created at created in tenantID. Each
// call gives a new IncidentName (derived from n and created); the
// IncidentNumber is left for AddIncident to assign.
func DemoIncident(tenantID string, n int, created time.Time) Row {
	if n < 0 {
		n = -n
	}
	s := demoScenarios[n%len(demoScenarios)]
	user := demoUsers[(n/len(demoScenarios)+n)%len(demoUsers)]
	host := demoHosts[(n*3+1)%len(demoHosts)]
	ip := demoIPs[(n*7+2)%len(demoIPs)]
	fill := func(t string) string {
		return strings.NewReplacer("{user}", user, "{host}", host, "{ip}", ip, "{n}", fmt.Sprint(40+n%60)).Replace(t)
	}
	created = created.UTC()
	name := nameGUID(fmt.Sprintf("demo:%s:%d:%d", tenantID, n, created.UnixNano()))
	alertIDs := make([]any, s.alerts)
	for i := range alertIDs {
		alertIDs[i] = nameGUID(fmt.Sprintf("demo-alert:%s:%d", name, i))
	}
	add := map[string]any{
		"alertsCount":       s.alerts,
		"bookmarksCount":    0,
		"commentsCount":     0,
		"alertProductNames": s.products,
		"tactics":           s.tactics,
		"techniques":        s.techniques,
	}
	row := Row{
		"IncidentName":      name,
		"Title":             fill(s.title),
		"Description":       fill(s.description),
		"Severity":          s.severity,
		"Status":            "New",
		"CreatedTime":       created,
		"LastModifiedTime":  created,
		"FirstActivityTime": created.Add(-time.Duration(4+n%20) * time.Minute),
		"LastActivityTime":  created.Add(-time.Minute),
		"AlertIds":          alertIDs,
		"AdditionalData":    add,
		"ModifiedBy":        "Incident created from alert",
		"Labels":            []any{},
	}
	if s.xdr {
		defenderID := 20000 + n
		row["ProviderName"] = "Microsoft XDR"
		row["ProviderIncidentId"] = fmt.Sprint(defenderID)
		add["providerIncidentUrl"] = fmt.Sprintf("https://security.microsoft.com/incident2/%d/overview?tid=%s", defenderID, tenantID)
		row["Labels"] = []any{map[string]any{"labelName": "Redirected", "labelType": "AutoAssigned"}}
		row["RelatedAnalyticRuleIds"] = []any{}
	} else {
		row["ProviderName"] = "Azure Sentinel"
		row["RelatedAnalyticRuleIds"] = []any{nameGUID("demo-rule:" + s.title)}
	}
	return row
}

// SeedDemoIncidents adds a dozen demo incidents to a workspace, created
// over the hours before now, some of them since updated (assigned, closed);
// all visible at once. It returns the rows added. The demo's monitor is
// forward-only, so these show what the workspace already held; new
// incidents (DemoIncident) are what it alerts on.
func SeedDemoIncidents(e *Emulator, tenantID, workspaceID string, now time.Time) ([]Row, error) {
	var out []Row
	const count = 12
	for i := range count {
		created := now.Add(-time.Duration(count-i) * 23 * time.Minute).Add(-time.Duration(i*7919%60) * time.Second)
		base := DemoIncident(tenantID, 1000+i, created)
		rows, err := e.AddIncidents(tenantID, workspaceID, []Row{base}, time.Time{})
		if err != nil {
			return nil, err
		}
		out = append(out, rows...)
		name := base["IncidentName"].(string)
		switch i % 4 {
		case 1: // picked up by an analyst
			row, err := e.UpdateIncident(tenantID, workspaceID, name, Row{
				"Status":           "Active",
				"LastModifiedTime": created.Add(9 * time.Minute),
				"ModifiedBy":       "Alex Wilber",
				"Owner": map[string]any{"objectId": ContosoAnalystOID, "email": ContosoAnalystUsername,
					"assignedTo": ContosoAnalystDisplayName, "userPrincipalName": ContosoAnalystUsername},
			}, time.Time{})
			if err != nil {
				return nil, err
			}
			out = append(out, row)
		case 3: // closed as a true positive
			row, err := e.UpdateIncident(tenantID, workspaceID, name, Row{
				"Status":                "Closed",
				"Classification":        "TruePositive",
				"ClassificationReason":  "SuspiciousActivity",
				"ClassificationComment": "Confirmed with the user; password reset and sessions revoked.",
				"LastModifiedTime":      created.Add(17 * time.Minute),
				"ModifiedBy":            "Adele Vance",
			}, time.Time{})
			if err != nil {
				return nil, err
			}
			out = append(out, row)
		}
	}
	return out, nil
}
