package web

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/clarion/sentinel/internal/api"
	"github.com/clarion/sentinel/internal/integration"
	"github.com/clarion/sentinel/internal/sentinel"
	"github.com/clarion/sentinel/internal/store"
)

// monitorForm is the add / edit monitor form: what the person typed (kept
// as typed when the form comes back with errors), the data-lake workspaces
// for the picker, and the messages next to the fields.
type monitorForm struct {
	Editing     bool
	ID          string
	Action      string
	Name        string
	Source      string // store.SourceSIEM or store.SourceDataLake: the tab that is open
	WorkspaceID string // SIEM tab: typed by hand
	Lake        string // Data lake tab: the picked workspace's id
	Severities  []severityBox
	Search      string
	Enabled     bool

	LakeWorkspaces []sentinel.Workspace
	LakeError      *notice // "Couldn't list workspaces", with the remedy

	Errors    map[string]string // form field → message
	Summary   []fieldMessage    // the same, in page order, for the summary at the top
	FormError string            // a problem with no field

	Health *monitorRow // edit: the monitor's sync health
	// Diagnosis explains what the monitor is (not) ingesting (edit page).
	Diagnosis      *diagnosisView
	DiagnosisError string
}

type diagnosisView struct {
	Summary  string
	Findings []findingView
}

type findingView struct {
	Level, LevelLabel, Message string
}

var findingLabels = map[string]string{"ok": "OK", "info": "Note", "warning": "Warning", "error": "Problem"}

// diagnose asks the service why the monitor is (not) ingesting; it may look
// at the Sentinel workspace, so it is bounded like the other calls to
// Microsoft.
func (h *Handler) diagnose(ctx context.Context, workspaceID, monitorID string, f *monitorForm) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	d, err := h.cfg.Integration.Diagnose(ctx, workspaceID, monitorID)
	if err != nil {
		h.log.Warn("diagnose monitor", "workspace_id", workspaceID, "monitor_id", monitorID, "err", err)
		f.DiagnosisError = "Couldn't diagnose this monitor just now; its sync health above is current. Reload the page to try again."
		return
	}
	v := &diagnosisView{Summary: d.Summary}
	for _, x := range d.Findings {
		label := findingLabels[x.Level]
		if label == "" {
			label = x.Level
		}
		v.Findings = append(v.Findings, findingView{Level: x.Level, LevelLabel: label, Message: x.Message})
	}
	f.Diagnosis = v
}

type severityBox struct {
	Value, Label string
	Checked      bool
}

type fieldMessage struct{ ID, Message string }

// formFields are the form's fields in page order, with the id of the
// element a summary link jumps to.
var formFields = []struct{ key, id string }{
	{"name", "name"},
	{"source", "source-siem"},
	{"workspace_id", "workspace_id"},
	{"datalake_workspace", "datalake_workspace"},
	{"severities", "severity-critical"},
	{"search", "search"},
}

func severityBoxes(checked []string) []severityBox {
	out := make([]severityBox, len(integration.Severities))
	for i, s := range integration.Severities {
		out[i] = severityBox{Value: s, Label: strings.ToUpper(s[:1]) + s[1:], Checked: slices.Contains(checked, s)}
	}
	return out
}

// lakeWorkspaces lists the data-lake workspaces for the picker. A failure
// is the "Couldn't list workspaces" notice; the SIEM tab still works.
func (h *Handler) lakeWorkspaces(ctx context.Context, workspaceID string) ([]sentinel.Workspace, *notice) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	ws, err := h.cfg.Integration.ListSentinelWorkspaces(ctx, workspaceID)
	if err == nil {
		return ws, nil
	}
	n := &notice{ID: "lake-error", Kind: "warning", Title: "Couldn't list workspaces"}
	var le *integration.ListError
	switch {
	case errors.As(err, &le):
		h.log.Warn("list sentinel workspaces", "workspace_id", workspaceID, "code", le.Code, "err", le.Err)
		n.Message = le.Message
	case errors.Is(err, integration.ErrNotConnected):
		n.Message = "This workspace is not connected to Microsoft Sentinel. Connect it first (Integrations → Microsoft Sentinel → Connect with Microsoft)."
	default:
		h.log.Error("list sentinel workspaces", "workspace_id", workspaceID, "err", err)
		n.Message = "Couldn't list workspaces. Use the SIEM workspace tab and enter the Workspace ID, or reconnect the integration if you expect the data lake to be available."
	}
	return nil, n
}

func (h *Handler) newMonitor(w http.ResponseWriter, r *http.Request, v *visit) {
	f := monitorForm{Action: "/integrations/sentinel/monitors", Source: store.SourceSIEM,
		Severities: severityBoxes(integration.Severities), Enabled: true}
	if r.URL.Query().Get("tab") == store.SourceDataLake {
		f.Source = store.SourceDataLake
	}
	f.LakeWorkspaces, f.LakeError = h.lakeWorkspaces(r.Context(), v.Principal.WorkspaceID)
	h.render(w, r, http.StatusOK, "monitor.html", v.page("Add monitor", "integrations", f))
}

func (h *Handler) editMonitor(w http.ResponseWriter, r *http.Request, v *visit) {
	m, err := h.cfg.Integration.GetMonitor(r.Context(), v.Principal.WorkspaceID, r.PathValue("id"))
	if errors.Is(err, integration.ErrNotFound) {
		h.notFound(w, r, "monitor")
		return
	}
	if err != nil {
		h.internal(w, r, "get monitor", err)
		return
	}
	sev := m.Severities
	if len(sev) == 0 {
		sev = integration.Severities // no filter: every box checked
	}
	row := newMonitorRow(m)
	f := monitorForm{Editing: true, ID: m.ID, Action: "/integrations/sentinel/monitors/" + m.ID + "/edit",
		Name: m.Name, Source: m.SourceKind, WorkspaceID: m.SentinelWorkspaceID, Severities: severityBoxes(sev),
		Search: m.Search, Enabled: m.Enabled, Health: &row}
	if m.SourceKind == store.SourceDataLake {
		f.Lake = m.SentinelWorkspaceID
	}
	f.LakeWorkspaces, f.LakeError = h.lakeWorkspaces(r.Context(), v.Principal.WorkspaceID)
	h.diagnose(r.Context(), v.Principal.WorkspaceID, m.ID, &f)
	h.render(w, r, http.StatusOK, "monitor.html", v.page("Edit monitor", "integrations", f))
}

// readMonitorForm takes the posted form as typed, and the service input it
// stands for. The data-lake pick is checked against the workspaces the
// tenant can see; a pick that is not among them gets its own message.
func (h *Handler) readMonitorForm(ctx context.Context, r *http.Request, p api.Principal, f *monitorForm) integration.MonitorInput {
	pf := r.PostForm
	f.Name, f.Source, f.WorkspaceID = pf.Get("name"), pf.Get("source"), pf.Get("workspace_id")
	f.Lake, f.Search, f.Enabled = pf.Get("datalake_workspace"), pf.Get("search"), pf.Get("enabled") != ""
	f.Severities = severityBoxes(pf["severities"])
	f.Errors = map[string]string{}
	f.LakeWorkspaces, f.LakeError = h.lakeWorkspaces(ctx, p.WorkspaceID)

	source := f.Source
	sev := pf["severities"]
	if sev == nil {
		sev = []string{} // every box unchecked: no filter
	}
	in := integration.MonitorInput{Name: &f.Name, Source: &source, Severities: &sev, Search: &f.Search, Enabled: &f.Enabled}
	if f.Source != store.SourceDataLake {
		if f.Source != store.SourceSIEM {
			f.Source = store.SourceSIEM // show a tab; the service names the bad value
		}
		noName := ""
		in.SentinelWorkspaceID, in.SentinelWorkspaceName = &f.WorkspaceID, &noName
		return in
	}
	var picked *sentinel.Workspace
	for i := range f.LakeWorkspaces {
		if f.LakeWorkspaces[i].ID == f.Lake {
			picked = &f.LakeWorkspaces[i]
		}
	}
	switch {
	case f.LakeError != nil:
		f.Errors["datalake_workspace"] = f.LakeError.Message
	case f.Lake == "":
		f.Errors["datalake_workspace"] = "Pick a Sentinel workspace from the list."
	case picked == nil:
		f.Errors["datalake_workspace"] = "That workspace is not one the connected tenant can see. Pick one from the list."
	}
	if picked == nil {
		// No workspace: the service reports the other fields' problems
		// too, and stores nothing.
		none := ""
		in.SentinelWorkspaceID = &none
		return in
	}
	in.SentinelWorkspaceID, in.SentinelWorkspaceName = &picked.ID, &picked.Name
	return in
}

// formErrors puts the service's answer next to the fields. It reports
// whether err was the person's input (the form is shown again).
func formErrors(f *monitorForm, err error) bool {
	fes := api.FieldErrors(err)
	switch {
	case len(fes) > 0:
		for _, fe := range fes {
			key := fe.Field
			if f.Source == store.SourceDataLake && (key == "workspace_id" || key == "workspace_name") {
				key = "datalake_workspace"
			}
			if _, dup := f.Errors[key]; !dup {
				f.Errors[key] = fe.Message
			}
		}
	case errors.Is(err, integration.ErrNotConnected):
		f.FormError = "This workspace is not connected to Microsoft Sentinel, so the monitor cannot be added. Connect it first on the Microsoft Sentinel page."
	default:
		return false
	}
	f.Summary = nil
	for _, ff := range formFields {
		if msg, ok := f.Errors[ff.key]; ok {
			f.Summary = append(f.Summary, fieldMessage{ID: ff.id, Message: msg})
		}
	}
	return true
}

func (h *Handler) createMonitor(w http.ResponseWriter, r *http.Request, v *visit) {
	f := monitorForm{Action: "/integrations/sentinel/monitors"}
	in := h.readMonitorForm(r.Context(), r, v.Principal, &f)
	m, err := h.cfg.Integration.CreateMonitor(r.Context(), v.Principal.WorkspaceID, in)
	if err == nil && len(f.Errors) > 0 {
		// Cannot happen (an empty workspace id is refused), but never
		// report success for a form that had a problem.
		err = &integration.FieldError{Field: "workspace_id", Message: f.Errors["datalake_workspace"]}
	}
	if err != nil {
		if formErrors(&f, err) {
			h.render(w, r, http.StatusUnprocessableEntity, "monitor.html", v.page("Add monitor", "integrations", f))
			return
		}
		h.internal(w, r, "create monitor", err)
		return
	}
	h.log.Info("monitor created", "workspace_id", v.Principal.WorkspaceID, "monitor_id", m.ID, "user_id", v.UserID)
	http.Redirect(w, r, sentinelPath+"?done=monitor_created#monitors", http.StatusSeeOther)
}

func (h *Handler) updateMonitor(w http.ResponseWriter, r *http.Request, v *visit) {
	id := r.PathValue("id")
	m, err := h.cfg.Integration.GetMonitor(r.Context(), v.Principal.WorkspaceID, id)
	if errors.Is(err, integration.ErrNotFound) {
		h.notFound(w, r, "monitor")
		return
	}
	if err != nil {
		h.internal(w, r, "get monitor", err)
		return
	}
	row := newMonitorRow(m)
	f := monitorForm{Editing: true, ID: id, Action: "/integrations/sentinel/monitors/" + id + "/edit", Health: &row}
	in := h.readMonitorForm(r.Context(), r, v.Principal, &f)
	_, err = h.cfg.Integration.UpdateMonitor(r.Context(), v.Principal.WorkspaceID, id, in)
	if err == nil && len(f.Errors) > 0 {
		err = &integration.FieldError{Field: "workspace_id", Message: f.Errors["datalake_workspace"]}
	}
	switch {
	case errors.Is(err, integration.ErrNotFound):
		h.notFound(w, r, "monitor")
		return
	case err != nil:
		if formErrors(&f, err) {
			h.render(w, r, http.StatusUnprocessableEntity, "monitor.html", v.page("Edit monitor", "integrations", f))
			return
		}
		h.internal(w, r, "update monitor", err)
		return
	}
	h.log.Info("monitor updated", "workspace_id", v.Principal.WorkspaceID, "monitor_id", id, "user_id", v.UserID)
	http.Redirect(w, r, sentinelPath+"?done=monitor_updated#monitors", http.StatusSeeOther)
}

func (h *Handler) deleteMonitorPage(w http.ResponseWriter, r *http.Request, v *visit) {
	m, err := h.cfg.Integration.GetMonitor(r.Context(), v.Principal.WorkspaceID, r.PathValue("id"))
	if errors.Is(err, integration.ErrNotFound) {
		h.notFound(w, r, "monitor")
		return
	}
	if err != nil {
		h.internal(w, r, "get monitor", err)
		return
	}
	h.render(w, r, http.StatusOK, "monitor-delete.html", v.page("Delete monitor", "integrations", newMonitorRow(m)))
}

func (h *Handler) deleteMonitor(w http.ResponseWriter, r *http.Request, v *visit) {
	id := r.PathValue("id")
	err := h.cfg.Integration.DeleteMonitor(r.Context(), v.Principal.WorkspaceID, id)
	if errors.Is(err, integration.ErrNotFound) {
		h.notFound(w, r, "monitor")
		return
	}
	if err != nil {
		h.internal(w, r, "delete monitor", err)
		return
	}
	h.log.Info("monitor deleted", "workspace_id", v.Principal.WorkspaceID, "monitor_id", id, "user_id", v.UserID)
	http.Redirect(w, r, sentinelPath+"?done=monitor_deleted#monitors", http.StatusSeeOther)
}
