package emulator

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"time"

	"github.com/clarion/sentinel/internal/emulator/kql"
)

// The Defender XDR side of a tenant, as the triage tools see it. It is not
// stored: every call builds it from
//
//   - the tenant's visible SecurityIncident rows (latest row per incident,
//     every workspace of the tenant): the incidents, in Microsoft Graph
//     security.incident shape, with their ProviderIncidentId as the Defender
//     id (Graph "id") and the Sentinel ids alongside;
//   - the tenant's visible SecurityAlert rows: an incident's alert whose id
//     (AlertIds) is a SystemAlertId is built from that row and its Entities;
//     the others are derived from the incident (products, tactics, and the
//     users, devices, addresses and files its text names);
//   - the built-in inventory below (devices, accounts, files, vulnerabilities,
//     network peers), written for the emulator in the style of the public
//     Graph and Defender for Endpoint samples; device and account ids are
//     derived from the tenant, so no two tenants share one.
//
// So the triage tools, query_lake and the poller always agree on which
// incidents exist.

// invMachine is a device of the built-in inventory.
type invMachine struct {
	name       string // computer name, as in the demo incidents
	os, osVer  string
	osBuild    int64
	ip         string // last internal address
	mac        string
	health     string
	risk       string
	exposure   string
	tags       []string
	group      string
	value      string
	users      []string // account names (before the @) signed in recently
	vulns      []string // CVE ids
	files      []string // file names observed on the device
	peers      []string // remote addresses it connected to
	firstSeenD int      // days before now
}

// invUser is an account of the built-in inventory (plus the tenant's
// configured users).
type invUser struct {
	account     string // mailbox name, before the @
	displayName string
	rid         int
	admin       bool
}

// invFile is a file of the built-in inventory.
type invFile struct {
	name, path        string
	size              int64
	publisher, signer string
	issuer            string
	validCert         bool
	prevalence        int64 // global prevalence
	determination     string
	fileType          string
	process           string // command line when it runs
	parent            string // parent process file name
	sha1, sha256, md5 string // empty: derived from the name
}

// invVuln is a vulnerability of the built-in inventory.
type invVuln struct {
	id, name, description, severity string
	cvss                            float64
	published                       string
	publicExploit, verified, kit    bool
	exploitTypes                    []string
}

// invIP is an external address of the built-in inventory.
type invIP struct {
	ip, country, note string
}

var invMachines = []invMachine{
	{name: "CONTOSO-WKS-014", os: "Windows11", osVer: "23H2", osBuild: 22631, ip: "10.1.4.14", mac: "00155D2A0E14",
		health: "Active", risk: "High", exposure: "Medium", tags: []string{"Finance"}, group: "Workstations", value: "Normal",
		users: []string{"megan.bowen", "lee.gu"}, vulns: []string{"CVE-2023-23397", "CVE-2024-21412"},
		files: []string{"powershell.exe", "update.ps1", "invoice_0423.html", "MsSense.exe"}, peers: []string{"203.0.113.45", "198.51.100.23"}, firstSeenD: 412},
	{name: "CONTOSO-WKS-027", os: "Windows10", osVer: "22H2", osBuild: 19045, ip: "10.1.4.27", mac: "00155D2A0E27",
		health: "Active", risk: "Medium", exposure: "Medium", tags: []string{}, group: "Workstations", value: "Normal",
		users: []string{"lee.gu", "nestor.wilke"}, vulns: []string{"CVE-2022-30190", "CVE-2023-23397"},
		files: []string{"powershell.exe", "dumper.exe", "MsSense.exe"}, peers: []string{"192.0.2.181"}, firstSeenD: 655},
	{name: "fin-sql-01", os: "WindowsServer2019", osVer: "1809", osBuild: 17763, ip: "10.1.8.21", mac: "00155D2A0815",
		health: "Active", risk: "High", exposure: "High", tags: []string{"Tier0", "SQL"}, group: "Servers", value: "High",
		users: []string{"nestor.wilke", "svc-sql"}, vulns: []string{"CVE-2020-1472", "CVE-2023-36884"},
		files: []string{"svch0st.exe", "README_RESTORE.txt", "MsSense.exe"}, peers: []string{"198.51.100.77", "203.0.113.201"}, firstSeenD: 903},
	{name: "CONTOSO-LT-203", os: "Windows11", osVer: "23H2", osBuild: 22631, ip: "10.1.6.203", mac: "00155D2A06CB",
		health: "Active", risk: "Low", exposure: "Low", tags: []string{"Laptop"}, group: "Workstations", value: "Normal",
		users: []string{"patti.fernandez", "lidia.holloway"}, vulns: []string{"CVE-2024-21412"},
		files: []string{"powershell.exe", "invoice_0423.html", "MsSense.exe"}, peers: []string{"203.0.113.201"}, firstSeenD: 188},
	{name: "web-prod-02", os: "Linux", osVer: "Ubuntu 22.04", osBuild: 0, ip: "10.1.10.2", mac: "00155D2A0A02",
		health: "Active", risk: "Medium", exposure: "High", tags: []string{"Internet facing"}, group: "Servers", value: "High",
		users: []string{"svc-web"}, vulns: []string{"CVE-2021-44228", "CVE-2024-6387"},
		files: []string{"xmrig"}, peers: []string{"192.0.2.181", "198.51.100.77"}, firstSeenD: 530},
}

var invUsers = []invUser{
	{"megan.bowen", "Megan Bowen", 1104, false},
	{"lee.gu", "Lee Gu", 1107, false},
	{"nestor.wilke", "Nestor Wilke", 1112, true},
	{"patti.fernandez", "Patti Fernandez", 1118, false},
	{"lidia.holloway", "Lidia Holloway", 1121, false},
	{"svc-sql", "SQL service", 1301, false},
	{"svc-web", "Web service", 1302, false},
}

var invFiles = []invFile{
	{name: "powershell.exe", path: `C:\Windows\System32\WindowsPowerShell\v1.0`, size: 455680, publisher: "Microsoft Corporation",
		signer: "Microsoft Windows", issuer: "Microsoft Windows Production PCA 2011", validCert: true, prevalence: 1000000,
		determination: "Clean", fileType: "PortableExecutable",
		process: `powershell.exe -NoProfile -ExecutionPolicy Bypass -EncodedCommand SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQA`, parent: "winword.exe"},
	{name: "update.ps1", path: `C:\Users\Public\Downloads`, size: 18211, prevalence: 3, determination: "Malware", fileType: "Script",
		process: `powershell.exe -File C:\Users\Public\Downloads\update.ps1`, parent: "powershell.exe"},
	{name: "invoice_0423.html", path: `C:\Users\Public\Downloads`, size: 7342, prevalence: 12, determination: "Phishing", fileType: "Document"},
	{name: "dumper.exe", path: `C:\Users\Public`, size: 1261568, prevalence: 1, determination: "Malware", fileType: "PortableExecutable",
		process: `dumper.exe -p lsass.exe -o C:\Users\Public\l.dmp`, parent: "cmd.exe"},
	{name: "svch0st.exe", path: `C:\ProgramData\Microsoft\Crypto`, size: 2940928, prevalence: 2, determination: "Malware", fileType: "PortableExecutable",
		process: `svch0st.exe --encrypt --paths D:\Shares --note README_RESTORE.txt`, parent: "services.exe"},
	{name: "README_RESTORE.txt", path: `D:\Shares\Finance`, size: 2211, prevalence: 40, determination: "Malware", fileType: "Text"},
	// MsSense.exe: the Defender for Endpoint sensor, with the hashes of the
	// Microsoft Graph documentation's alert evidence.
	{name: "MsSense.exe", path: `C:\Program Files\Windows Defender Advanced Threat Protection`, size: 6136392,
		publisher: "Microsoft Corporation", signer: "Microsoft Windows Publisher", issuer: "Microsoft Windows Production PCA 2011",
		validCert: true, prevalence: 900000, determination: "Clean", fileType: "PortableExecutable", process: `"MsSense.exe"`, parent: "services.exe",
		sha1: "5f1e8acedc065031aad553b710838eb366cfee9a", sha256: "8963a19fb992ad9a76576c5638fd68292cffb9aaac29eb8285f9abf6196a7dec"},
	{name: "xmrig", path: "/tmp/.cache", size: 8342112, prevalence: 25, determination: "Malware", fileType: "ELF",
		process: "/tmp/.cache/xmrig -o pool.example.net:4444 --background", parent: "bash"},
}

var invVulns = []invVuln{
	{"CVE-2023-23397", "Microsoft Outlook Elevation of Privilege Vulnerability", "A specially crafted email can make Outlook leak the user's Net-NTLMv2 hash to a remote server without any user interaction.", "Critical", 9.8, "2023-03-14T00:00:00Z", true, true, false, []string{"PrivilegeEscalation"}},
	{"CVE-2024-21412", "Internet Shortcut Files Security Feature Bypass Vulnerability", "A crafted Internet Shortcut file can bypass the Mark of the Web warnings when the user opens it.", "High", 8.1, "2024-02-13T00:00:00Z", true, true, false, []string{"SecurityFeatureBypass"}},
	{"CVE-2022-30190", "Microsoft Windows Support Diagnostic Tool (MSDT) Remote Code Execution Vulnerability", "\"Follina\": a document can make MSDT run code when it is opened or previewed.", "High", 7.8, "2022-05-30T00:00:00Z", true, true, true, []string{"RemoteCodeExecution"}},
	{"CVE-2020-1472", "Netlogon Elevation of Privilege Vulnerability", "\"Zerologon\": an unauthenticated attacker on the network can take over a domain controller through the Netlogon protocol.", "Critical", 10.0, "2020-08-11T00:00:00Z", true, true, true, []string{"PrivilegeEscalation"}},
	{"CVE-2023-36884", "Office and Windows HTML Remote Code Execution Vulnerability", "Crafted Office documents can run code in the context of the user who opens them.", "High", 8.8, "2023-07-11T00:00:00Z", true, true, false, []string{"RemoteCodeExecution"}},
	{"CVE-2021-44228", "Apache Log4j2 Remote Code Execution Vulnerability", "\"Log4Shell\": JNDI lookups in logged text let a remote attacker run code.", "Critical", 10.0, "2021-12-10T00:00:00Z", true, true, true, []string{"RemoteCodeExecution"}},
	{"CVE-2024-6387", "OpenSSH regreSSHion Remote Code Execution Vulnerability", "A signal handler race in sshd lets an unauthenticated attacker run code as root on glibc-based Linux.", "High", 8.1, "2024-07-01T00:00:00Z", true, false, false, []string{"RemoteCodeExecution"}},
}

var invIPs = []invIP{
	{"203.0.113.45", "NL", "hosting provider, password spray source"},
	{"198.51.100.23", "RU", "phishing infrastructure"},
	{"192.0.2.181", "US", "Tor exit node"},
	{"203.0.113.201", "BR", "residential proxy"},
	{"198.51.100.77", "CN", "mining pool and RDP scanner"},
}

// tenantInventory is the built-in inventory for one tenant: ids and domain
// names derived from the tenant.
type tenantInventory struct {
	tenantID, domain, netbios string
	machines                  []*dMachine
	users                     []*dUser
	files                     []*dFile
}

type dMachine struct {
	inv       invMachine
	id        string // 40 hex digits, as Defender for Endpoint machine ids
	dnsName   string
	aadID     string
	firstSeen time.Time
	lastSeen  time.Time
}

type dUser struct {
	account, upn, displayName, sid, objectID, domain string
	admin                                            bool
}

type dFile struct {
	inv               invFile
	sha1, sha256, md5 string
}

func hexOf(sum []byte) string { return hex.EncodeToString(sum) }

func fileHashes(f invFile) (string, string, string) {
	seed := []byte("emulator-file:" + f.name + ":" + f.path)
	s1, s256, m5 := sha1.Sum(seed), sha256.Sum256(seed), md5.Sum(seed)
	a, b, c := hexOf(s1[:]), hexOf(s256[:]), hexOf(m5[:])
	if f.sha1 != "" {
		a = f.sha1
	}
	if f.sha256 != "" {
		b = f.sha256
	}
	if f.md5 != "" {
		c = f.md5
	}
	return a, b, c
}

// inventory builds the tenant's inventory. Callers hold e.mu.
func (e *Emulator) inventory(t *tenantState, now time.Time) *tenantInventory {
	name := strings.ToLower(strings.Fields(t.Name + " tenant")[0])
	inv := &tenantInventory{tenantID: t.ID, domain: name + ".onmicrosoft.com", netbios: strings.ToUpper(name)}
	day := now.UTC().Truncate(24 * time.Hour)
	for i, m := range invMachines {
		sum := sha1.Sum([]byte("machine:" + t.ID + ":" + m.name))
		inv.machines = append(inv.machines, &dMachine{
			inv: m, id: hexOf(sum[:]), dnsName: strings.ToLower(m.name) + "." + name + ".local",
			aadID:     nameGUID("aad-device:" + t.ID + ":" + m.name),
			firstSeen: day.Add(-time.Duration(m.firstSeenD)*24*time.Hour + time.Duration(i*37)*time.Minute),
			lastSeen:  now.UTC().Add(-time.Duration(3+i*4) * time.Minute).Truncate(time.Second),
		})
	}
	seen := map[string]bool{}
	addUser := func(account, display string, rid int, admin bool) {
		account = strings.ToLower(account)
		if seen[account] {
			return
		}
		seen[account] = true
		inv.users = append(inv.users, &dUser{
			account: account, upn: account + "@" + inv.domain, displayName: display, domain: inv.netbios,
			sid:      fmt.Sprintf("S-1-5-21-%d-%d-%d-%d", 1000000000+fnvNum(t.ID)%900000000, 2000000000+fnvNum(t.ID+"b")%100000000, 3000000+fnvNum(t.ID+"c")%900000, rid),
			objectID: nameGUID("user:" + t.ID + ":" + account), admin: admin,
		})
	}
	for _, u := range invUsers {
		addUser(u.account, u.displayName, u.rid, u.admin)
	}
	for i, u := range t.Users {
		acct, _, _ := strings.Cut(u.Username, "@")
		addUser(acct, u.DisplayName, 1500+i, i == 0)
		// The configured users keep their own UPN and object id.
		for _, du := range inv.users {
			if du.account == strings.ToLower(acct) {
				du.upn, du.objectID = strings.ToLower(u.Username), u.OID
			}
		}
	}
	for _, f := range invFiles {
		a, b, c := fileHashes(f)
		inv.files = append(inv.files, &dFile{inv: f, sha1: a, sha256: b, md5: c})
	}
	return inv
}

func fnvNum(s string) int {
	h := fnv.New32a()
	h.Write([]byte(s))
	return int(h.Sum32() & 0x7fffffff)
}

func (inv *tenantInventory) machine(idOrName string) *dMachine {
	k := strings.ToLower(strings.TrimSpace(idOrName))
	for _, m := range inv.machines {
		if m.id == k || strings.ToLower(m.inv.name) == k || m.dnsName == k || m.aadID == k {
			return m
		}
	}
	return nil
}

func (inv *tenantInventory) machineByName(name string) *dMachine {
	for _, m := range inv.machines {
		if strings.EqualFold(m.inv.name, name) {
			return m
		}
	}
	return nil
}

// user finds an account by UPN, mail name, DOMAIN\name, SID or object id
// (case-insensitive). Mail addresses of other domains match by their name.
func (inv *tenantInventory) user(id string) *dUser {
	k := strings.ToLower(strings.TrimSpace(id))
	if _, after, ok := strings.Cut(k, `\`); ok {
		k = after
	}
	name, _, _ := strings.Cut(k, "@")
	for _, u := range inv.users {
		if u.upn == k || u.account == k || u.account == name || strings.ToLower(u.sid) == k || u.objectID == k {
			return u
		}
	}
	return nil
}

func (inv *tenantInventory) file(hash string) *dFile {
	k := strings.ToLower(strings.TrimSpace(hash))
	for _, f := range inv.files {
		if f.sha1 == k || f.sha256 == k || f.md5 == k {
			return f
		}
	}
	return nil
}

func (inv *tenantInventory) fileByName(name string) *dFile {
	for _, f := range inv.files {
		if strings.EqualFold(f.inv.name, name) {
			return f
		}
	}
	return nil
}

// --- incidents and alerts ---

// dIncident is one incident of the Defender view.
type dIncident struct {
	row       Row // latest SecurityIncident row
	workspace string
	defender  string // Graph id: ProviderIncidentId, else IncidentNumber
	created   time.Time
	updated   time.Time
	alerts    []*dAlert
}

// dAlert is one alert, already in Graph security.alert shape, with the
// entities it names for the look-ups.
type dAlert struct {
	graph    map[string]any
	created  time.Time
	incident *dIncident
	machines []*dMachine
	users    []*dUser
	files    []*dFile
	ips      []string
}

type defenderView struct {
	tenantID  string
	now       time.Time
	inv       *tenantInventory
	incidents []*dIncident // newest first
	alerts    []*dAlert    // newest first
	byAlertID map[string]*dAlert
	// extra hunting rows from the tenant's workspaces, by table
	hunting map[string][]Row
	// sessions are the accounts signed in to each device: the inventory's,
	// and the users of every alert on the device.
	sessions map[*dMachine][]string
}

// defenderView builds the tenant's Defender view at the emulator's time
// (or at now, when not zero).
func (e *Emulator) defenderView(tenantID string) (*defenderView, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.tenant(tenantID)
	if t == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownTenant, tenantID)
	}
	now := e.now()
	v := &defenderView{tenantID: t.ID, now: now, inv: e.inventory(t, now), byAlertID: map[string]*dAlert{}, hunting: map[string][]Row{}}

	alertRows := map[string]Row{}
	for _, w := range t.Workspaces {
		ws := t.workspaces[w.ID]
		for _, r := range ws.tables["SecurityAlert"] {
			if r.visibleAt.After(now) {
				continue
			}
			if id, _ := r.row["SystemAlertId"].(string); id != "" {
				alertRows[strings.ToLower(id)] = r.row
			}
		}
		for _, h := range huntingTables {
			for _, r := range ws.tables[h.Name] {
				if !r.visibleAt.After(now) {
					v.hunting[h.Name] = append(v.hunting[h.Name], r.row)
				}
			}
		}
		// Latest visible row per incident.
		latest := map[string]storedRow{}
		for _, r := range ws.tables[SecurityIncidentTable.Name] {
			if r.visibleAt.After(now) {
				continue
			}
			name, _ := r.row["IncidentName"].(string)
			prev, ok := latest[name]
			if !ok || !timeOf(r.row["LastModifiedTime"]).Before(timeOf(prev.row["LastModifiedTime"])) {
				latest[name] = r
			}
		}
		for _, r := range latest {
			inc := &dIncident{row: r.row, workspace: w.ID, created: timeOf(r.row["CreatedTime"]), updated: timeOf(r.row["LastModifiedTime"])}
			inc.defender = strings.TrimSpace(str(r.row["ProviderIncidentId"]))
			if inc.defender == "" {
				inc.defender = str(r.row["IncidentNumber"])
			}
			v.incidents = append(v.incidents, inc)
		}
	}
	slices.SortFunc(v.incidents, func(a, b *dIncident) int {
		if c := b.created.Compare(a.created); c != 0 {
			return c
		}
		return strings.Compare(str(b.row["IncidentName"]), str(a.row["IncidentName"]))
	})
	for _, inc := range v.incidents {
		ids := stringList(inc.row["AlertIds"])
		if len(ids) == 0 {
			ids = []string{nameGUID("alert:" + str(inc.row["IncidentName"]))}
		}
		for i, id := range ids {
			var a *dAlert
			if ar, ok := alertRows[strings.ToLower(id)]; ok {
				a = v.alertFromRow(inc, id, ar)
			} else {
				a = v.deriveAlert(inc, id, i, len(ids))
			}
			inc.alerts = append(inc.alerts, a)
			v.alerts = append(v.alerts, a)
			v.byAlertID[strings.ToLower(id)] = a
		}
	}
	slices.SortStableFunc(v.alerts, func(a, b *dAlert) int { return b.created.Compare(a.created) })
	v.sessions = map[*dMachine][]string{}
	for _, m := range v.inv.machines {
		v.sessions[m] = slices.Clone(m.inv.users)
	}
	for _, a := range v.alerts {
		for _, m := range a.machines {
			for _, u := range a.users {
				if !slices.Contains(v.sessions[m], u.account) {
					v.sessions[m] = append(v.sessions[m], u.account)
				}
			}
		}
	}
	return v, nil
}

// userMachines lists the devices where an account has a session.
func (v *defenderView) userMachines(account string) []*dMachine {
	var out []*dMachine
	for _, m := range v.inv.machines {
		if slices.Contains(v.sessions[m], account) {
			out = append(out, m)
		}
	}
	return out
}

func stringList(v any) []string {
	var out []string
	switch x := v.(type) {
	case []any:
		for _, el := range x {
			if s := strings.TrimSpace(str(el)); s != "" {
				out = append(out, s)
			}
		}
	case string:
		var l []any
		if json.Unmarshal([]byte(x), &l) == nil {
			return stringList(l)
		}
	}
	return out
}

func mapOf(v any) map[string]any {
	switch x := v.(type) {
	case map[string]any:
		return x
	case string:
		var m map[string]any
		if json.Unmarshal([]byte(x), &m) == nil {
			return m
		}
	}
	return nil
}

// graphTime writes a time as Microsoft Graph does (UTC, seven digits).
func graphTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return kql.FormatDatetime(t)
}

// Sentinel → Graph spellings.
var (
	toGraphSeverity = map[string]string{"high": "high", "medium": "medium", "low": "low", "informational": "informational"}
	toGraphStatus   = map[string]string{"new": "active", "active": "inProgress", "closed": "resolved"}
	toAlertStatus   = map[string]string{"new": "new", "active": "inProgress", "closed": "resolved"}
	toGraphClass    = map[string]string{"truepositive": "truePositive", "falsepositive": "falsePositive",
		"benignpositive": "informationalExpectedActivity", "undetermined": "unknown"}
	toGraphDetermination = map[string]string{"suspiciousactivity": "maliciousUserActivity", "suspiciousbutexpected": "confirmedUserActivity",
		"incorrectalertlogic": "notMalicious", "inaccuratedata": "notEnoughDataToValidate"}
)

func lookup(m map[string]string, k, def string) string {
	if v, ok := m[strings.ToLower(strings.TrimSpace(k))]; ok {
		return v
	}
	return def
}

func (inc *dIncident) graphStatus() string {
	return lookup(toGraphStatus, str(inc.row["Status"]), "active")
}

func (inc *dIncident) assignedTo() any {
	o := mapOf(inc.row["Owner"])
	for _, k := range []string{"userPrincipalName", "email", "assignedTo"} {
		if s := str(o[k]); s != "" {
			return s
		}
	}
	return nil
}

func (v *defenderView) incidentURL(inc *dIncident) string {
	if u := str(mapOf(inc.row["AdditionalData"])["providerIncidentUrl"]); strings.HasPrefix(u, "https://") {
		return u
	}
	return "https://security.microsoft.com/incidents/" + inc.defender + "?tid=" + v.tenantID
}

// graphIncident renders an incident as Microsoft Graph's security.incident,
// with the Sentinel identifiers under "sentinel" (the Defender id is "id").
func (v *defenderView) graphIncident(inc *dIncident, withAlerts bool) map[string]any {
	r := inc.row
	var tags, systemTags []any
	for _, l := range anyList(r["Labels"]) {
		lm := mapOf(l)
		name := str(lm["labelName"])
		if name == "" {
			continue
		}
		if strings.EqualFold(str(lm["labelType"]), "User") {
			tags = append(tags, name)
		} else {
			systemTags = append(systemTags, name)
		}
	}
	var comments []any
	for _, c := range anyList(r["Comments"]) {
		cm := mapOf(c)
		author := mapOf(cm["author"])
		comments = append(comments, map[string]any{"comment": cm["message"], "createdBy": firstNonEmpty(str(author["userPrincipalName"]), str(author["name"])), "createdTime": cm["createdTimeUtc"]})
	}
	class := lookup(toGraphClass, str(r["Classification"]), "unknown")
	determination := "unknown"
	if class != "unknown" {
		determination = lookup(toGraphDetermination, str(r["ClassificationReason"]), "other")
	}
	out := map[string]any{
		"@odata.type":        "#microsoft.graph.security.incident",
		"id":                 inc.defender,
		"tenantId":           v.tenantID,
		"displayName":        r["Title"],
		"description":        r["Description"],
		"createdDateTime":    graphTime(inc.created),
		"lastUpdateDateTime": graphTime(inc.updated),
		"incidentWebUrl":     v.incidentURL(inc),
		"redirectIncidentId": nil,
		"assignedTo":         inc.assignedTo(),
		"classification":     class,
		"determination":      determination,
		"status":             inc.graphStatus(),
		"severity":           lookup(toGraphSeverity, str(r["Severity"]), "unknown"),
		"customTags":         nonNil(tags),
		"tags":               nonNil(tags),
		"systemTags":         nonNil(systemTags),
		"comments":           nonNil(comments),
		"resolvingComment":   nilIfEmpty(str(r["ClassificationComment"])),
		"summary":            nil,
		"alertsCount":        len(inc.alerts),
		"sentinel": map[string]any{
			"incidentId":     r["IncidentName"],
			"incidentNumber": r["IncidentNumber"],
			"workspaceId":    inc.workspace,
			"providerName":   r["ProviderName"],
			"incidentUrl":    r["IncidentUrl"],
		},
	}
	if withAlerts {
		alerts := make([]any, 0, len(inc.alerts))
		for _, a := range inc.alerts {
			alerts = append(alerts, a.graph)
		}
		out["alerts"] = alerts
	}
	return out
}

func anyList(v any) []any {
	switch x := v.(type) {
	case []any:
		return x
	case string:
		var l []any
		if json.Unmarshal([]byte(x), &l) == nil {
			return l
		}
	}
	return nil
}

func nonNil(l []any) []any {
	if l == nil {
		return []any{}
	}
	return l
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// productSource maps an alert product name to Graph's serviceSource,
// detectionSource and productName.
func productSource(product string) (service, detection, name string) {
	switch strings.ToLower(product) {
	case "microsoft defender for endpoint", "microsoft defender advanced threat protection", "mdatp":
		return "microsoftDefenderForEndpoint", "microsoftDefenderForEndpoint", "Microsoft Defender for Endpoint"
	case "microsoft defender antivirus":
		return "microsoftDefenderForEndpoint", "antivirus", "Microsoft Defender for Endpoint"
	case "microsoft defender for office 365":
		return "microsoftDefenderForOffice365", "microsoftDefenderForOffice365", "Microsoft Defender for Office 365"
	case "microsoft defender for cloud apps":
		return "microsoftDefenderForCloudApps", "microsoftDefenderForCloudApps", "Microsoft Defender for Cloud Apps"
	case "microsoft defender for identity":
		return "microsoftDefenderForIdentity", "microsoftDefenderForIdentity", "Microsoft Defender for Identity"
	case "microsoft entra id protection", "azure active directory identity protection":
		return "azureAdIdentityProtection", "azureAdIdentityProtection", "Microsoft Entra ID Protection"
	case "microsoft defender for cloud", "azure security center":
		return "microsoftDefenderForCloud", "microsoftDefenderForCloud", "Microsoft Defender for Cloud"
	}
	return "microsoftSentinel", "scheduledAlerts", "Microsoft Sentinel"
}

var tacticTitles = map[string]string{
	"InitialAccess": "Suspicious sign-in activity", "Execution": "Suspicious process execution",
	"Persistence": "Suspicious persistence mechanism", "PrivilegeEscalation": "Privilege escalation attempt",
	"DefenseEvasion": "Defense evasion behavior", "CredentialAccess": "Credential access attempt",
	"Discovery": "Reconnaissance activity", "LateralMovement": "Lateral movement using valid credentials",
	"Collection": "Suspicious data collection", "Exfiltration": "Possible data exfiltration",
	"CommandAndControl": "Connection to a command and control server", "Impact": "Destructive activity",
}

// entitiesOf finds the inventory entities an incident's text names; when it
// names none, a device and an account are picked from its name, so that
// every alert has evidence.
func (v *defenderView) entitiesOf(inc *dIncident) ([]*dMachine, []*dUser, []*dFile, []string) {
	text := strings.ToLower(str(inc.row["Title"]) + " " + str(inc.row["Description"]))
	var ms []*dMachine
	var us []*dUser
	var fs []*dFile
	var ips []string
	for _, m := range v.inv.machines {
		if strings.Contains(text, strings.ToLower(m.inv.name)) {
			ms = append(ms, m)
		}
	}
	for _, u := range v.inv.users {
		if strings.Contains(text, u.account+"@") || strings.Contains(text, u.upn) {
			us = append(us, u)
		}
	}
	for _, ip := range invIPs {
		if strings.Contains(text, ip.ip) {
			ips = append(ips, ip.ip)
		}
	}
	for _, f := range v.inv.files {
		if strings.Contains(text, strings.ToLower(f.inv.name)) {
			fs = append(fs, f)
		}
	}
	keyword := func(words []string, file string) {
		for _, w := range words {
			if strings.Contains(text, w) {
				if f := v.inv.fileByName(file); f != nil && !slices.Contains(fs, f) {
					fs = append(fs, f)
				}
				return
			}
		}
	}
	keyword([]string{"powershell"}, "update.ps1")
	keyword([]string{"ransom"}, "svch0st.exe")
	keyword([]string{"lsass"}, "dumper.exe")
	keyword([]string{"attachment", "phishing"}, "invoice_0423.html")
	keyword([]string{"mining"}, "xmrig")
	seed := fnvNum(str(inc.row["IncidentName"]))
	if len(ms) == 0 && len(us) == 0 {
		ms = append(ms, v.inv.machines[seed%len(v.inv.machines)])
	}
	if len(us) == 0 {
		m := ms[0]
		if len(m.inv.users) > 0 {
			if u := v.inv.user(m.inv.users[seed%len(m.inv.users)]); u != nil {
				us = append(us, u)
			}
		}
	}
	if len(ms) == 0 && len(us) > 0 {
		for _, m := range v.inv.machines {
			if slices.Contains(m.inv.users, us[0].account) {
				ms = append(ms, m)
				break
			}
		}
	}
	return ms, us, fs, ips
}

// deriveAlert makes the i-th of n alerts of an incident that has no
// SecurityAlert row.
func (v *defenderView) deriveAlert(inc *dIncident, id string, i, n int) *dAlert {
	r := inc.row
	add := mapOf(r["AdditionalData"])
	products := stringList(add["alertProductNames"])
	tactics := stringList(add["tactics"])
	techniques := stringList(add["techniques"])
	product := str(r["ProviderName"])
	if len(products) > 0 {
		product = products[i%len(products)]
	}
	service, detection, productName := productSource(product)
	category := "SuspiciousActivity"
	if len(tactics) > 0 {
		category = tactics[i%len(tactics)]
	}
	title := str(r["Title"])
	if i > 0 {
		title = firstNonEmpty(tacticTitles[category], "Related suspicious activity") + " (" + str(r["Title"]) + ")"
	}
	ms, us, fs, ips := v.entitiesOf(inc)
	first := timeOf(r["FirstActivityTime"])
	if first.IsZero() {
		first = inc.created.Add(-10 * time.Minute)
	}
	last := timeOf(r["LastActivityTime"])
	if last.IsZero() {
		last = inc.created.Add(-time.Minute)
	}
	created := inc.created.Add(-time.Duration(n-i) * 30 * time.Second)
	a := &dAlert{created: created, incident: inc, machines: ms, users: us, files: fs, ips: ips}
	status := lookup(toAlertStatus, str(r["Status"]), "new")
	var resolved any
	if status == "resolved" {
		resolved = graphTime(inc.updated)
	}
	techs := make([]any, 0, len(techniques))
	for _, t := range techniques {
		techs = append(techs, t)
	}
	incGraph := map[string]any{"class": lookup(toGraphClass, str(r["Classification"]), "unknown")}
	a.graph = map[string]any{
		"@odata.type":           "#microsoft.graph.security.alert",
		"id":                    id,
		"providerAlertId":       id,
		"incidentId":            inc.defender,
		"status":                status,
		"severity":              lookup(toGraphSeverity, str(r["Severity"]), "unknown"),
		"classification":        incGraph["class"],
		"determination":         "unknown",
		"serviceSource":         service,
		"detectionSource":       detection,
		"productName":           productName,
		"detectorId":            nameGUID("detector:" + productName + ":" + category),
		"providerName":          productName,
		"tenantId":              v.tenantID,
		"title":                 title,
		"description":           r["Description"],
		"recommendedActions":    recommendedActions(category),
		"category":              category,
		"assignedTo":            inc.assignedTo(),
		"alertWebUrl":           "https://security.microsoft.com/alerts/" + id + "?tid=" + v.tenantID,
		"incidentWebUrl":        v.incidentURL(inc),
		"actorDisplayName":      nil,
		"threatDisplayName":     nil,
		"threatFamilyName":      nil,
		"mitreTechniques":       techs,
		"createdDateTime":       graphTime(created),
		"lastUpdateDateTime":    graphTime(inc.updated),
		"resolvedDateTime":      resolved,
		"firstActivityDateTime": graphTime(first),
		"lastActivityDateTime":  graphTime(last),
		"comments":              []any{},
		"systemTags":            []any{},
		"evidence":              v.evidence(created, ms, us, fs, ips),
		"additionalData":        map[string]any{},
	}
	return a
}

func recommendedActions(category string) string {
	switch category {
	case "CredentialAccess", "InitialAccess":
		return "1. Confirm with the user whether the activity was theirs.\n2. If not, reset the password, revoke sessions and require MFA re-registration.\n3. Review sign-ins from the same IP address for other accounts."
	case "Execution", "DefenseEvasion":
		return "1. Review the process tree and command line on the device timeline.\n2. Isolate the device if the activity is malicious.\n3. Collect an investigation package and scan the device."
	case "Impact":
		return "1. Isolate affected devices immediately.\n2. Identify the initial access vector and the accounts used.\n3. Restore encrypted data from offline backups."
	}
	return "1. Review the alert evidence and the related entities.\n2. Look for the same activity on other devices and accounts with advanced hunting.\n3. Classify the alert when the investigation is done."
}

func (v *defenderView) evidence(at time.Time, ms []*dMachine, us []*dUser, fs []*dFile, ips []string) []any {
	base := func(typ string, roles ...string) map[string]any {
		if roles == nil {
			roles = []string{}
		}
		return map[string]any{"@odata.type": "#microsoft.graph.security." + typ, "createdDateTime": graphTime(at),
			"verdict": "suspicious", "remediationStatus": "none", "remediationStatusDetails": nil,
			"roles": roles, "detailedRoles": []string{}, "tags": []string{}}
	}
	var out []any
	for i, m := range ms {
		ev := base("deviceEvidence", "compromised")
		if i > 0 {
			ev["roles"] = []string{"contextual"}
		}
		var logged []any
		for _, acct := range m.inv.users {
			if u := v.inv.user(acct); u != nil {
				logged = append(logged, map[string]any{"accountName": u.account, "domainName": u.domain})
			}
		}
		ev["firstSeenDateTime"] = graphTime(m.firstSeen)
		ev["mdeDeviceId"] = m.id
		ev["azureAdDeviceId"] = m.aadID
		ev["deviceDnsName"] = m.dnsName
		ev["osPlatform"] = m.inv.os
		ev["osBuild"] = m.inv.osBuild
		ev["version"] = m.inv.osVer
		ev["healthStatus"] = strings.ToLower(m.inv.health)
		ev["riskScore"] = strings.ToLower(m.inv.risk)
		ev["rbacGroupName"] = m.inv.group
		ev["onboardingStatus"] = "onboarded"
		ev["defenderAvStatus"] = "updated"
		ev["ipInterfaces"] = []string{m.inv.ip}
		ev["loggedOnUsers"] = nonNil(logged)
		out = append(out, ev)
	}
	for _, u := range us {
		ev := base("userEvidence", "compromised")
		ev["userAccount"] = map[string]any{"accountName": u.account, "domainName": u.domain, "userSid": u.sid,
			"azureAdUserId": u.objectID, "userPrincipalName": u.upn, "displayName": u.displayName}
		out = append(out, ev)
	}
	for _, ip := range ips {
		ev := base("ipEvidence", "attacker")
		ev["ipAddress"] = ip
		for _, x := range invIPs {
			if x.ip == ip {
				ev["countryLetterCode"] = x.country
			}
		}
		out = append(out, ev)
	}
	for _, f := range fs {
		ev := base("fileEvidence")
		ev["detectionStatus"] = "detected"
		if len(ms) > 0 {
			ev["mdeDeviceId"] = ms[0].id
		}
		ev["fileDetails"] = fileDetails(f)
		out = append(out, ev)
		if f.inv.process != "" && len(ms) > 0 {
			pe := base("processEvidence")
			pe["processId"] = 4000 + fnvNum(f.inv.name)%4000
			pe["processCommandLine"] = f.inv.process
			pe["processCreationDateTime"] = graphTime(at.Add(-2 * time.Minute))
			pe["detectionStatus"] = "detected"
			pe["mdeDeviceId"] = ms[0].id
			pe["imageFile"] = fileDetails(f)
			pe["parentProcessImageFile"] = map[string]any{"fileName": f.inv.parent}
			if len(us) > 0 {
				pe["userAccount"] = map[string]any{"accountName": us[0].account, "domainName": us[0].domain,
					"userSid": us[0].sid, "azureAdUserId": us[0].objectID, "userPrincipalName": us[0].upn}
			}
			out = append(out, pe)
		}
	}
	return nonNil(out)
}

func fileDetails(f *dFile) map[string]any {
	return map[string]any{"sha1": f.sha1, "sha256": f.sha256, "md5": f.md5, "fileName": f.inv.name, "filePath": f.inv.path,
		"fileSize": f.inv.size, "filePublisher": nilIfEmpty(f.inv.publisher), "signer": nilIfEmpty(f.inv.signer), "issuer": nilIfEmpty(f.inv.issuer)}
}

// alertFromRow builds an alert from a SecurityAlert row: the row's own
// name, severity, times, tactics and Entities (Sentinel's entity JSON).
func (v *defenderView) alertFromRow(inc *dIncident, id string, r Row) *dAlert {
	created := timeOf(r["TimeGenerated"])
	if created.IsZero() {
		created = inc.created
	}
	service, detection, productName := productSource(firstNonEmpty(str(r["ProductName"]), str(r["ProviderName"])))
	a := &dAlert{created: created, incident: inc}
	var ms []*dMachine
	var us []*dUser
	var fs []*dFile
	var ips []string
	var extra []any
	for _, ent := range anyList(r["Entities"]) {
		em := mapOf(ent)
		switch strings.ToLower(str(em["Type"])) {
		case "host":
			if m := v.inv.machineByName(str(em["HostName"])); m != nil {
				ms = append(ms, m)
			} else {
				extra = append(extra, map[string]any{"@odata.type": "#microsoft.graph.security.deviceEvidence",
					"createdDateTime": graphTime(created), "verdict": "suspicious", "remediationStatus": "none",
					"deviceDnsName": firstNonEmpty(str(em["FQDN"]), str(em["HostName"])), "osPlatform": nilIfEmpty(str(em["OSFamily"])),
					"roles": []string{"compromised"}, "detailedRoles": []string{}, "tags": []string{}})
			}
		case "account":
			if u := v.inv.user(firstNonEmpty(str(em["UPNSuffix"]), "") + str(em["Name"])); u != nil {
				us = append(us, u)
			} else {
				extra = append(extra, map[string]any{"@odata.type": "#microsoft.graph.security.userEvidence",
					"createdDateTime": graphTime(created), "verdict": "suspicious", "remediationStatus": "none",
					"userAccount": map[string]any{"accountName": str(em["Name"]), "domainName": nilIfEmpty(str(em["NTDomain"])),
						"userSid": nilIfEmpty(str(em["Sid"])), "azureAdUserId": nilIfEmpty(str(em["AadUserId"])), "userPrincipalName": nil},
					"roles": []string{"compromised"}, "detailedRoles": []string{}, "tags": []string{}})
			}
		case "ip":
			if ip := str(em["Address"]); ip != "" {
				ips = append(ips, ip)
			}
		case "file", "filehash":
			if f := v.inv.fileByName(str(em["Name"])); f != nil {
				fs = append(fs, f)
			}
			if f := v.inv.file(str(em["Value"])); f != nil && !slices.Contains(fs, f) {
				fs = append(fs, f)
			}
		}
	}
	a.machines, a.users, a.files, a.ips = ms, us, fs, ips
	evidence := append(v.evidence(created, ms, us, fs, ips), extra...)
	status := lookup(toAlertStatus, str(r["Status"]), "new")
	var techs []any
	for _, t := range stringList(r["Techniques"]) {
		techs = append(techs, t)
	}
	category := firstNonEmpty(strings.Split(str(r["Tactics"]), ",")[0], "SuspiciousActivity")
	remediation := strings.Join(stringList(r["RemediationSteps"]), "\n")
	if remediation == "" {
		remediation = str(r["RemediationSteps"])
	}
	link := str(r["AlertLink"])
	if !strings.HasPrefix(link, "https://") {
		link = "https://security.microsoft.com/alerts/" + id + "?tid=" + v.tenantID
	}
	a.graph = map[string]any{
		"@odata.type":           "#microsoft.graph.security.alert",
		"id":                    id,
		"providerAlertId":       firstNonEmpty(str(r["VendorOriginalId"]), id),
		"incidentId":            inc.defender,
		"status":                status,
		"severity":              lookup(toGraphSeverity, str(r["AlertSeverity"]), "unknown"),
		"classification":        "unknown",
		"determination":         "unknown",
		"serviceSource":         service,
		"detectionSource":       detection,
		"productName":           productName,
		"detectorId":            nilIfEmpty(str(r["AlertType"])),
		"providerName":          nilIfEmpty(str(r["ProviderName"])),
		"tenantId":              v.tenantID,
		"title":                 firstNonEmpty(str(r["DisplayName"]), str(r["AlertName"])),
		"description":           r["Description"],
		"recommendedActions":    remediation,
		"category":              strings.TrimSpace(category),
		"assignedTo":            inc.assignedTo(),
		"alertWebUrl":           link,
		"incidentWebUrl":        v.incidentURL(inc),
		"actorDisplayName":      nil,
		"threatDisplayName":     nil,
		"threatFamilyName":      nil,
		"mitreTechniques":       nonNil(techs),
		"createdDateTime":       graphTime(created),
		"lastUpdateDateTime":    graphTime(firstTime(timeOf(r["ProcessingEndTime"]), created)),
		"resolvedDateTime":      nil,
		"firstActivityDateTime": graphTime(timeOf(r["StartTime"])),
		"lastActivityDateTime":  graphTime(timeOf(r["EndTime"])),
		"comments":              []any{},
		"systemTags":            []any{},
		"evidence":              nonNil(evidence),
		"additionalData":        nonNilMap(mapOf(r["ExtendedProperties"])),
	}
	return a
}

func firstTime(ts ...time.Time) time.Time {
	for _, t := range ts {
		if !t.IsZero() {
			return t
		}
	}
	return time.Time{}
}

func nonNilMap(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// --- look-ups ---

// findIncident finds an incident by its Sentinel id: the IncidentName GUID
// or the numeric IncidentNumber. A Defender incident number is not a
// Sentinel id (MICROSOFT.md §3, PRODUCT.md "Agent tools").
func (v *defenderView) findIncident(id string) *dIncident {
	id = strings.TrimSpace(id)
	for _, inc := range v.incidents {
		if strings.EqualFold(str(inc.row["IncidentName"]), id) || str(inc.row["IncidentNumber"]) == id {
			return inc
		}
	}
	return nil
}

func (a *dAlert) hasMachine(m *dMachine) bool { return slices.Contains(a.machines, m) }
func (a *dAlert) hasUser(u *dUser) bool       { return slices.Contains(a.users, u) }
func (a *dAlert) hasFile(f *dFile) bool       { return slices.Contains(a.files, f) }

func (a *dAlert) hasIP(ip string) bool {
	if slices.Contains(a.ips, ip) {
		return true
	}
	for _, m := range a.machines {
		if m.inv.ip == ip {
			return true
		}
	}
	return false
}

func (v *defenderView) alertsWhere(keep func(*dAlert) bool) []any {
	out := []any{}
	for _, a := range v.alerts {
		if keep(a) {
			out = append(out, a.graph)
		}
	}
	return out
}

// machineJSON renders a device as Defender for Endpoint's Machine entity.
func (v *defenderView) machineJSON(m *dMachine) map[string]any {
	ext := ""
	if len(m.inv.peers) > 0 {
		ext = "20.81.4." + fmt.Sprint(10+fnvNum(m.inv.name)%200)
	}
	return map[string]any{
		"id":                    m.id,
		"computerDnsName":       m.dnsName,
		"firstSeen":             graphTime(m.firstSeen),
		"lastSeen":              graphTime(m.lastSeen),
		"osPlatform":            m.inv.os,
		"osVersion":             m.inv.osVer,
		"osProcessor":           "x64",
		"version":               m.inv.osVer,
		"lastIpAddress":         m.inv.ip,
		"lastExternalIpAddress": nilIfEmpty(ext),
		"agentVersion":          "10.8760.22621.1016",
		"osBuild":               m.inv.osBuild,
		"healthStatus":          m.inv.health,
		"deviceValue":           m.inv.value,
		"rbacGroupId":           100 + len(m.inv.group),
		"rbacGroupName":         m.inv.group,
		"riskScore":             m.inv.risk,
		"exposureLevel":         m.inv.exposure,
		"isAadJoined":           !strings.HasPrefix(m.inv.os, "Linux"),
		"aadDeviceId":           m.aadID,
		"machineTags":           m.inv.tags,
		"onboardingStatus":      "Onboarded",
		"ipAddresses": []any{map[string]any{"ipAddress": m.inv.ip, "macAddress": m.inv.mac, "type": "Ethernet",
			"operationalStatus": "Up"}},
	}
}

func (v *defenderView) loggedOnUsers(m *dMachine) []any {
	out := []any{}
	for i, acct := range v.sessions[m] {
		u := v.inv.user(acct)
		if u == nil {
			continue
		}
		machines := v.userMachines(acct)
		logon := "Interactive"
		if strings.HasPrefix(acct, "svc-") {
			logon = "Service"
		}
		out = append(out, map[string]any{
			"id":                      strings.ToLower(u.domain) + `\` + u.account,
			"accountName":             u.account,
			"accountDomain":           strings.ToLower(u.domain),
			"accountSid":              u.sid,
			"firstSeen":               graphTime(m.firstSeen.Add(time.Duration(i+1) * 24 * time.Hour)),
			"lastSeen":                graphTime(m.lastSeen.Add(-time.Duration(i*3) * time.Hour)),
			"mostPrevalentMachineId":  machines[0].id,
			"leastPrevalentMachineId": machines[len(machines)-1].id,
			"logonTypes":              logon,
			"logOnMachinesCount":      len(machines),
			"isDomainAdmin":           u.admin,
			"isOnlyNetworkUser":       false,
		})
	}
	return out
}

func (v *defenderView) vulnerabilities(m *dMachine) []any {
	out := []any{}
	for _, id := range m.inv.vulns {
		for _, vu := range invVulns {
			if vu.id != id {
				continue
			}
			exposed := 0
			for _, other := range v.inv.machines {
				if slices.Contains(other.inv.vulns, id) {
					exposed++
				}
			}
			out = append(out, map[string]any{
				"id": vu.id, "name": vu.name, "description": vu.description, "severity": vu.severity,
				"cvssV3": vu.cvss, "exposedMachines": exposed, "publishedOn": vu.published, "updatedOn": vu.published,
				"publicExploit": vu.publicExploit, "exploitVerified": vu.verified, "exploitInKit": vu.kit,
				"exploitTypes": vu.exploitTypes, "exploitUris": []string{},
			})
		}
	}
	return out
}

func (v *defenderView) fileInfo(f *dFile) map[string]any {
	return map[string]any{
		"sha1": f.sha1, "sha256": f.sha256, "md5": f.md5,
		"globalPrevalence": f.inv.prevalence, "globalFirstObserved": graphTime(v.now.Add(-time.Duration(30+f.inv.prevalence%300) * 24 * time.Hour).Truncate(time.Hour)),
		"globalLastObserved": graphTime(v.now.Add(-time.Hour).Truncate(time.Hour)),
		"size":               f.inv.size, "fileType": f.inv.fileType, "isPeFile": f.inv.fileType == "PortableExecutable",
		"filePublisher": nilIfEmpty(f.inv.publisher), "fileProductName": nilIfEmpty(productOf(f)),
		"signer": nilIfEmpty(f.inv.signer), "issuer": nilIfEmpty(f.inv.issuer), "signerHash": nil,
		"isValidCertificate": f.inv.validCert, "determinationType": f.inv.determination, "determinationValue": determinationValue(f),
	}
}

func productOf(f *dFile) string {
	if f.inv.publisher == "Microsoft Corporation" {
		return "Microsoft® Windows® Operating System"
	}
	return ""
}

func determinationValue(f *dFile) string {
	switch f.inv.determination {
	case "Malware":
		return "Trojan:Win32/Emulated.A!dha"
	case "Phishing":
		return "Trojan:HTML/Phish.EM!MTB"
	}
	return ""
}

// fileMachines lists the devices a file was seen on: the inventory's and the
// devices of alerts that name it.
func (v *defenderView) fileMachines(f *dFile) []*dMachine {
	var out []*dMachine
	for _, m := range v.inv.machines {
		if slices.Contains(m.inv.files, f.inv.name) {
			out = append(out, m)
		}
	}
	for _, a := range v.alerts {
		if a.hasFile(f) {
			for _, m := range a.machines {
				if !slices.Contains(out, m) {
					out = append(out, m)
				}
			}
		}
	}
	return out
}

func (v *defenderView) fileStatistics(f *dFile) map[string]any {
	ms := v.fileMachines(f)
	first, last := v.now, time.Time{}
	for _, m := range ms {
		if m.firstSeen.Before(first) {
			first = m.firstSeen
		}
		if m.lastSeen.After(last) {
			last = m.lastSeen
		}
	}
	if len(ms) == 0 {
		first = time.Time{}
	}
	return map[string]any{
		"@odata.context":      "https://api.security.microsoft.com/api/$metadata#microsoft.windowsDefenderATP.api.InOrgFileStats",
		"sha1":                f.sha1,
		"orgPrevalence":       fmt.Sprint(len(ms)),
		"orgFirstSeen":        graphTime(first),
		"orgLastSeen":         graphTime(last),
		"globalPrevalence":    fmt.Sprint(f.inv.prevalence),
		"globalFirstObserved": v.fileInfo(f)["globalFirstObserved"],
		"globalLastObserved":  v.fileInfo(f)["globalLastObserved"],
		"topFileNames":        []string{f.inv.name},
	}
}

// ipMachines lists the devices that use or talked to an address.
func (v *defenderView) ipMachines(ip string) []*dMachine {
	var out []*dMachine
	for _, m := range v.inv.machines {
		if m.inv.ip == ip || slices.Contains(m.inv.peers, ip) {
			out = append(out, m)
		}
	}
	return out
}

func (v *defenderView) ipStatistics(ip string) map[string]any {
	ms := v.ipMachines(ip)
	stats := map[string]any{
		"@odata.context": "https://api.security.microsoft.com/api/$metadata#microsoft.windowsDefenderATP.api.InOrgIPStats",
		"ipAddress":      ip, "orgPrevalence": fmt.Sprint(len(ms)), "orgFirstSeen": nil, "orgLastSeen": nil,
	}
	if len(ms) > 0 {
		stats["orgFirstSeen"] = graphTime(v.now.Add(-time.Duration(2+fnvNum(ip)%20) * 24 * time.Hour).Truncate(time.Second))
		stats["orgLastSeen"] = graphTime(v.now.Add(-time.Duration(5+fnvNum(ip)%50) * time.Minute).Truncate(time.Second))
	}
	for _, x := range invIPs {
		if x.ip == ip {
			stats["countryCode"] = x.country
		}
	}
	return stats
}
