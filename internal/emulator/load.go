package emulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/clarion/sentinel/internal/emulator/kql"
)

// ErrNotIncidents is returned by DecodeIncidents for JSON that holds no
// incidents in a known shape.
var ErrNotIncidents = errors.New("emulator: not an incident payload")

// LoadIncidents reads a file of incidents and returns them as
// SecurityIncident rows (normalised, see Row). See DecodeIncidents for the
// shapes it reads.
func LoadIncidents(path string) ([]Row, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("emulator: load incidents: %w", err)
	}
	rows, err := DecodeIncidents(b)
	if err != nil {
		return nil, fmt.Errorf("emulator: load incidents from %s: %w", path, err)
	}
	return rows, nil
}

// LoadIncidentDir adds the incidents of every JSON file of dir that holds
// incidents (files of other payloads are skipped) to a workspace, visible
// at once: the way `clarion emulator` seeds itself with the public
// samples. It returns the number of rows added.
func (e *Emulator) LoadIncidentDir(dir, tenantID, workspaceID string) (int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("emulator: load incident dir: %w", err)
	}
	n := 0
	for _, ent := range entries {
		if ent.IsDir() || !strings.HasSuffix(ent.Name(), ".json") {
			continue
		}
		rows, err := LoadIncidents(filepath.Join(dir, ent.Name()))
		if errors.Is(err, ErrNotIncidents) {
			continue
		}
		if err != nil {
			return n, err
		}
		if _, err := e.AddIncidents(tenantID, workspaceID, rows, time.Time{}); err != nil {
			return n, err
		}
		n += len(rows)
	}
	return n, nil
}

// DecodeIncidents reads incidents in any of these shapes and maps them to
// SecurityIncident rows (MICROSOFT.md §4):
//
//   - an ARM incidents list page ({"value":[...],"nextLink":...}), one ARM
//     incident, or either wrapped as Azure REST API spec examples
//     ({"responses":{"200":{"body":...}}}) or in a {"content":...} envelope;
//   - Log Analytics SecurityIncident rows: an array of row objects (dynamic
//     columns as JSON text, "None" nulls), a {"tables":[...]} query
//     response, Kusto v2 frames, or {"rows":[...]};
//   - Microsoft Graph security incidents: a {"value":[...]} page or one.
//
// The ARM mapping is field by field: name→IncidentName,
// incidentNumber→IncidentNumber, title→Title, description→Description,
// severity→Severity, status→Status, classification*, owner→Owner,
// labels→Labels, createdTimeUtc→CreatedTime,
// lastModifiedTimeUtc→LastModifiedTime (and TimeGenerated),
// first/lastActivityTimeUtc→First/LastActivityTime, incidentUrl→IncidentUrl,
// providerName/providerIncidentId, additionalData→AdditionalData,
// relatedAnalyticRuleIds. Graph: id→ProviderIncidentId,
// displayName→Title, createdDateTime→CreatedTime,
// lastUpdateDateTime→LastModifiedTime, incidentWebUrl→
// AdditionalData.providerIncidentUrl, severity/status/classification in
// Sentinel's spelling, assignedTo→Owner, tags→Labels, alerts→AlertIds, and
// IncidentName a GUID derived from the id (stable across loads).
func DecodeIncidents(data []byte) ([]Row, error) {
	return decodeIncidents(data, true)
}

// decodeIncidents is DecodeIncidents; requireName=false accepts rows
// without IncidentName (AddIncident gives them one).
func decodeIncidents(data []byte, requireName bool) ([]Row, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("emulator: decode incidents: %w", err)
	}
	raws, err := incidentObjects(v, 0)
	if err != nil {
		return nil, err
	}
	rows := make([]Row, 0, len(raws))
	for i, r := range raws {
		row, err := normalize(SecurityIncidentTable, r)
		if err != nil {
			return nil, fmt.Errorf("emulator: incident %d: %w", i, err)
		}
		if name, _ := row["IncidentName"].(string); name == "" && requireName {
			return nil, fmt.Errorf("%w: incident %d has no IncidentName (is it a SecurityIncident row?)", ErrNotIncidents, i)
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// incidentObjects finds the incidents in a decoded payload and maps each to
// a raw row (values not yet normalised).
func incidentObjects(v any, depth int) ([]Row, error) {
	if depth > 4 {
		return nil, ErrNotIncidents
	}
	switch x := v.(type) {
	case []any:
		if len(x) == 0 {
			return nil, nil
		}
		if isFrames(x) {
			return rowsFromFrames(x)
		}
		var out []Row
		for _, el := range x {
			obj, ok := el.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%w: array of %T", ErrNotIncidents, el)
			}
			r, err := incidentObject(obj)
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		}
		return out, nil
	case map[string]any:
		if tables, ok := x["tables"].([]any); ok {
			return rowsFromTables(tables)
		}
		if value, ok := x["value"].([]any); ok {
			return incidentObjects(value, depth+1)
		}
		if rows, ok := x["rows"].([]any); ok {
			return incidentObjects(rows, depth+1)
		}
		if resp, ok := x["responses"].(map[string]any); ok {
			if ok200, ok := resp["200"].(map[string]any); ok {
				return incidentObjects(ok200["body"], depth+1)
			}
		}
		if content, ok := x["content"]; ok && content != nil {
			return incidentObjects(content, depth+1)
		}
		r, err := incidentObject(x)
		if err != nil {
			return nil, err
		}
		return []Row{r}, nil
	}
	return nil, fmt.Errorf("%w: %T", ErrNotIncidents, v)
}

func incidentObject(obj map[string]any) (Row, error) {
	switch {
	case obj["IncidentName"] != nil:
		return Row(obj), nil
	case isARMIncident(obj):
		return armToRow(obj), nil
	case isGraphIncident(obj):
		return graphToRow(obj), nil
	case obj["Title"] != nil || obj["CreatedTime"] != nil:
		return Row(obj), nil // a SecurityIncident row without its name
	}
	return nil, fmt.Errorf("%w: object with keys %s", ErrNotIncidents, keysOf(obj))
}

func keysOf(m map[string]any) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	if len(ks) > 8 {
		ks = append(ks[:8], "...")
	}
	return strings.Join(ks, ", ")
}

func isARMIncident(obj map[string]any) bool {
	p, ok := obj["properties"].(map[string]any)
	if !ok {
		return false
	}
	_, hasTitle := p["title"]
	_, hasCreated := p["createdTimeUtc"]
	return hasTitle || hasCreated
}

func isGraphIncident(obj map[string]any) bool {
	if t, _ := obj["@odata.type"].(string); t == "#microsoft.graph.security.incident" {
		return true
	}
	_, dn := obj["displayName"]
	_, cd := obj["createdDateTime"]
	return dn && cd
}

func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

func armToRow(obj map[string]any) Row {
	p := obj["properties"].(map[string]any)
	row := Row{
		"IncidentName":          obj["name"],
		"IncidentNumber":        p["incidentNumber"],
		"Title":                 p["title"],
		"Description":           p["description"],
		"Severity":              p["severity"],
		"Status":                p["status"],
		"Classification":        p["classification"],
		"ClassificationComment": p["classificationComment"],
		"ClassificationReason":  p["classificationReason"],
		"Owner":                 p["owner"],
		"Labels":                p["labels"],
		"ProviderName":          p["providerName"],
		"ProviderIncidentId":    p["providerIncidentId"],
		"FirstActivityTime":     p["firstActivityTimeUtc"],
		"LastActivityTime":      p["lastActivityTimeUtc"],
		"CreatedTime":           p["createdTimeUtc"],
		"LastModifiedTime":      p["lastModifiedTimeUtc"],
		"TimeGenerated":         p["lastModifiedTimeUtc"],
		"IncidentUrl":           p["incidentUrl"],
		"AdditionalData":        p["additionalData"],
		"RelatedAnalyticRuleIds": func() any {
			if v, ok := p["relatedAnalyticRuleIds"]; ok {
				return v
			}
			return []any{}
		}(),
		"AlertIds":     []any{},
		"BookmarkIds":  []any{},
		"Comments":     []any{},
		"Tasks":        []any{},
		"SourceSystem": "Azure",
		"Type":         "SecurityIncident",
	}
	if str(p["status"]) == "Closed" {
		row["ClosedTime"] = p["lastModifiedTimeUtc"]
	}
	for k, v := range row {
		if v == nil {
			delete(row, k)
		}
	}
	return row
}

// Graph spells enums in camelCase; Sentinel in PascalCase.
var (
	graphStatus = map[string]string{"active": "Active", "inprogress": "Active", "new": "New",
		"resolved": "Closed", "redirected": "Closed", "awaitingaction": "Active"}
	graphClassification = map[string]string{"truepositive": "TruePositive", "falsepositive": "FalsePositive",
		"informationalexpectedactivity": "BenignPositive", "unknown": "Undetermined"}
	graphDetermination = map[string]string{"multistagedattack": "SuspiciousActivity", "malware": "SuspiciousActivity",
		"phishing": "SuspiciousActivity", "compromisedaccount": "SuspiciousActivity", "malicioususeractivity": "SuspiciousActivity",
		"unwantedsoftware": "SuspiciousActivity", "securitytesting": "SuspiciousButExpected",
		"lineofbusinessapplication": "SuspiciousButExpected", "confirmedactivity": "SuspiciousButExpected",
		"notmalicious": "IncorrectAlertLogic", "notenoughdatatovalidate": "InaccurateData"}
)

func pascal(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func graphToRow(obj map[string]any) Row {
	id := str(obj["id"])
	row := Row{
		"IncidentName":       nameGUID("graph-incident:" + id),
		"ProviderIncidentId": id,
		"ProviderName":       "Microsoft XDR",
		"Title":              obj["displayName"],
		"Description":        obj["description"],
		"Severity":           pascal(str(obj["severity"])),
		"CreatedTime":        obj["createdDateTime"],
		"LastModifiedTime":   obj["lastUpdateDateTime"],
		"TimeGenerated":      obj["lastUpdateDateTime"],
		"SourceSystem":       "Azure",
		"Type":               "SecurityIncident",
		"ModifiedBy":         "Microsoft Defender XDR",
	}
	if st := strings.ToLower(str(obj["status"])); st != "" {
		if s, ok := graphStatus[st]; ok {
			row["Status"] = s
		} else {
			row["Status"] = pascal(st)
		}
		if row["Status"] == "Closed" {
			row["ClosedTime"] = obj["lastUpdateDateTime"]
		}
	}
	if c := strings.ToLower(str(obj["classification"])); c != "" {
		row["Classification"] = graphClassification[c]
	}
	if d := strings.ToLower(str(obj["determination"])); d != "" {
		row["ClassificationReason"] = graphDetermination[d]
	}
	if a := str(obj["assignedTo"]); a != "" {
		row["Owner"] = map[string]any{"objectId": nil, "email": a, "assignedTo": a, "userPrincipalName": a}
	}
	var labels []any
	for _, key := range []string{"tags", "customTags"} {
		if ts, ok := obj[key].([]any); ok {
			for _, t := range ts {
				labels = append(labels, map[string]any{"labelName": str(t), "labelType": "User"})
			}
		}
	}
	if ts, ok := obj["systemTags"].([]any); ok {
		for _, t := range ts {
			labels = append(labels, map[string]any{"labelName": str(t), "labelType": "System"})
		}
	}
	if labels == nil {
		labels = []any{}
	}
	row["Labels"] = labels
	var comments []any
	if cs, ok := obj["comments"].([]any); ok {
		for _, c := range cs {
			if cm, ok := c.(map[string]any); ok {
				comments = append(comments, map[string]any{
					"message":        cm["comment"],
					"createdTimeUtc": cm["createdTime"],
					"author":         map[string]any{"name": cm["createdBy"], "userPrincipalName": cm["createdBy"]},
				})
			}
		}
	}
	if comments == nil {
		comments = []any{}
	}
	row["Comments"] = comments

	alertIDs := []any{}
	products := []any{}
	tactics := []any{}
	seen := map[string]bool{}
	var first, last time.Time
	if as, ok := obj["alerts"].([]any); ok {
		for _, a := range as {
			am, ok := a.(map[string]any)
			if !ok {
				continue
			}
			alertIDs = append(alertIDs, str(am["id"]))
			for _, key := range []string{"productName", "serviceSource"} {
				if p := str(am[key]); p != "" && !seen["p:"+p] {
					seen["p:"+p] = true
					products = append(products, p)
					break
				}
			}
			if c := str(am["category"]); c != "" && !seen["t:"+c] {
				seen["t:"+c] = true
				tactics = append(tactics, c)
			}
			if t, err := kql.ParseDatetime(str(am["firstActivityDateTime"])); err == nil && (first.IsZero() || t.Before(first)) {
				first = t
			}
			if t, err := kql.ParseDatetime(str(am["lastActivityDateTime"])); err == nil && t.After(last) {
				last = t
			}
		}
	}
	if !first.IsZero() {
		row["FirstActivityTime"] = first
	}
	if !last.IsZero() {
		row["LastActivityTime"] = last
	}
	row["AlertIds"] = alertIDs
	add := map[string]any{
		"alertsCount":       float64(len(alertIDs)),
		"bookmarksCount":    float64(0),
		"commentsCount":     float64(len(comments)),
		"alertProductNames": products,
		"tactics":           tactics,
		"techniques":        []any{},
	}
	if u := str(obj["incidentWebUrl"]); u != "" {
		add["providerIncidentUrl"] = u
	}
	row["AdditionalData"] = add
	for k, v := range row {
		if v == nil {
			delete(row, k)
		}
	}
	return row
}

// rowsFromTables reads the first table of a Log Analytics query response.
func rowsFromTables(tables []any) ([]Row, error) {
	if len(tables) == 0 {
		return nil, nil
	}
	t, ok := tables[0].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: tables[0] is %T", ErrNotIncidents, tables[0])
	}
	return rowsFromColumns(t["columns"], t["rows"], "ColumnName", "name")
}

func isFrames(x []any) bool {
	first, ok := x[0].(map[string]any)
	if !ok {
		return false
	}
	_, ok = first["FrameType"]
	return ok
}

// rowsFromFrames reads the PrimaryResult table of a Kusto v2 response.
func rowsFromFrames(frames []any) ([]Row, error) {
	for _, f := range frames {
		fm, ok := f.(map[string]any)
		if !ok || fm["FrameType"] != "DataTable" || fm["TableKind"] != "PrimaryResult" {
			continue
		}
		return rowsFromColumns(fm["Columns"], fm["Rows"], "ColumnName", "name")
	}
	return nil, fmt.Errorf("%w: no PrimaryResult frame", ErrNotIncidents)
}

func rowsFromColumns(colsV, rowsV any, nameKeys ...string) ([]Row, error) {
	colsA, ok := colsV.([]any)
	if !ok {
		return nil, fmt.Errorf("%w: no columns", ErrNotIncidents)
	}
	names := make([]string, len(colsA))
	for i, c := range colsA {
		cm, _ := c.(map[string]any)
		for _, k := range nameKeys {
			if n, ok := cm[k].(string); ok {
				names[i] = n
			}
		}
	}
	rowsA, _ := rowsV.([]any)
	var out []Row
	for _, r := range rowsA {
		vals, ok := r.([]any)
		if !ok {
			continue
		}
		row := Row{}
		for i, v := range vals {
			if i < len(names) {
				row[names[i]] = v
			}
		}
		out = append(out, row)
	}
	return out, nil
}
