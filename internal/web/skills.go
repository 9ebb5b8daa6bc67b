package web

import (
	"errors"
	"net/http"
	"net/url"
	"slices"

	"github.com/clarion/sentinel/internal/store"
	"github.com/clarion/sentinel/internal/tools"
)

// The skill editor: skills are named sets of toolsets that agents call
// (package tools); here a person creates a skill and attaches or detaches
// the two Sentinel toolsets, seeing every tool each one brings. Everything
// goes through tools.Service, the same calls as /api/v1/skills.

type skillsData struct {
	Available bool
	Skills    []skillRow
	Name      string // the create form, as typed
	Desc      string
	Errors    map[string]string
	Connected bool
}

type skillRow struct {
	store.Skill
	ToolsetNames []string
}

type skillData struct {
	Skill     store.Skill
	MCPPath   string
	Toolsets  []toolsetCard
	Connected bool
}

type toolsetCard struct {
	*tools.Toolset
	Attached bool
}

func (h *Handler) skillsAvailable(w http.ResponseWriter, r *http.Request, v *visit) bool {
	if h.cfg.Tools != nil {
		return true
	}
	h.render(w, r, http.StatusOK, "skills.html", v.page("Skills", "skills", skillsData{}))
	return false
}

func (h *Handler) connected(r *http.Request, v *visit) bool {
	st, err := h.cfg.Connections.Status(r.Context(), v.Principal.WorkspaceID)
	return err == nil && st.Connected()
}

func (h *Handler) skills(w http.ResponseWriter, r *http.Request, v *visit) {
	if !h.skillsAvailable(w, r, v) {
		return
	}
	h.renderSkills(w, r, v, http.StatusOK, skillsData{Errors: map[string]string{}})
}

func (h *Handler) renderSkills(w http.ResponseWriter, r *http.Request, v *visit, status int, d skillsData) {
	sks, err := h.cfg.Tools.ListSkills(r.Context(), v.Principal.WorkspaceID)
	if err != nil {
		h.internal(w, r, "list skills", err)
		return
	}
	d.Available, d.Connected = true, h.connected(r, v)
	for _, sk := range sks {
		row := skillRow{Skill: sk}
		for _, ts := range tools.Toolsets {
			if slices.Contains(sk.Toolsets, ts.ID) {
				row.ToolsetNames = append(row.ToolsetNames, ts.Name)
			}
		}
		d.Skills = append(d.Skills, row)
	}
	var notices []notice
	if r.Method == http.MethodGet && r.URL.Query().Get("done") == "deleted" {
		notices = append(notices, notice{ID: "done-skill_deleted", Kind: "success", Title: "Skill deleted.", Message: "Its audit records stay."})
	}
	h.render(w, r, status, "skills.html", v.page("Skills", "skills", d, notices...))
}

func (h *Handler) createSkill(w http.ResponseWriter, r *http.Request, v *visit) {
	if !h.skillsAvailable(w, r, v) {
		return
	}
	d := skillsData{Name: r.PostForm.Get("name"), Desc: r.PostForm.Get("description"), Errors: map[string]string{}}
	sk, err := h.cfg.Tools.CreateSkill(r.Context(), v.Principal.WorkspaceID, d.Name, d.Desc, nil)
	var te *tools.Error
	if errors.As(err, &te) {
		field := te.Field
		if field != "description" {
			field = "name"
		}
		d.Errors[field] = te.Message
		h.renderSkills(w, r, v, http.StatusUnprocessableEntity, d)
		return
	}
	if err != nil {
		h.internal(w, r, "create skill", err)
		return
	}
	h.log.Info("skill created", "workspace_id", v.Principal.WorkspaceID, "skill", sk.Name, "user_id", v.UserID)
	http.Redirect(w, r, "/skills/"+url.PathEscape(sk.Name)+"?done=created", http.StatusSeeOther)
}

func (h *Handler) skill(w http.ResponseWriter, r *http.Request, v *visit) {
	if !h.skillsAvailable(w, r, v) {
		return
	}
	sk, err := h.cfg.Tools.GetSkill(r.Context(), v.Principal.WorkspaceID, r.PathValue("name"))
	var te *tools.Error
	if errors.As(err, &te) && te.Code == tools.CodeSkillNotFound {
		h.notFound(w, r, "skill")
		return
	}
	if err != nil {
		h.internal(w, r, "get skill", err)
		return
	}
	d := skillData{Skill: sk, MCPPath: "/mcp/skills/" + sk.Name, Connected: h.connected(r, v)}
	for _, ts := range tools.Toolsets {
		d.Toolsets = append(d.Toolsets, toolsetCard{Toolset: ts, Attached: slices.Contains(sk.Toolsets, ts.ID)})
	}
	var notices []notice
	q := r.URL.Query()
	switch q.Get("done") {
	case "created":
		notices = append(notices, notice{ID: "done-skill_created", Kind: "success", Title: "Skill created.", Message: "Attach the toolsets its agents may use."})
	case "attached", "detached":
		if ts, ok := tools.ToolsetByID(q.Get("toolset")); ok {
			what := "attached to"
			if q.Get("done") == "detached" {
				what = "detached from"
			}
			notices = append(notices, notice{ID: "done-" + q.Get("done"), Kind: "success", Title: ts.Name + " " + what + " this skill."})
		}
	}
	h.render(w, r, http.StatusOK, "skill.html", v.page("Skill "+sk.Name, "skills", d, notices...))
}

func (h *Handler) changeToolset(w http.ResponseWriter, r *http.Request, v *visit) {
	if !h.skillsAvailable(w, r, v) {
		return
	}
	name, toolset, action := r.PathValue("name"), r.PathValue("toolset"), r.PathValue("action")
	var (
		sk  store.Skill
		err error
	)
	switch action {
	case "attach":
		sk, err = h.cfg.Tools.AttachToolset(r.Context(), v.Principal.WorkspaceID, name, toolset)
	case "detach":
		sk, err = h.cfg.Tools.DetachToolset(r.Context(), v.Principal.WorkspaceID, name, toolset)
	default:
		h.notFound(w, r, "action")
		return
	}
	var te *tools.Error
	if errors.As(err, &te) {
		if te.Code == tools.CodeSkillNotFound {
			h.notFound(w, r, "skill")
		} else {
			h.errorPage(w, r, http.StatusBadRequest, "Not changed", te.Message)
		}
		return
	}
	if err != nil {
		h.internal(w, r, action+" toolset", err)
		return
	}
	h.log.Info("skill toolset changed", "workspace_id", v.Principal.WorkspaceID, "skill", sk.Name, "toolset", toolset, "action", action, "user_id", v.UserID)
	q := url.Values{"done": {action + "ed"}, "toolset": {toolset}}
	http.Redirect(w, r, "/skills/"+url.PathEscape(sk.Name)+"?"+q.Encode()+"#toolset-"+toolset, http.StatusSeeOther)
}

func (h *Handler) deleteSkill(w http.ResponseWriter, r *http.Request, v *visit) {
	if !h.skillsAvailable(w, r, v) {
		return
	}
	err := h.cfg.Tools.DeleteSkill(r.Context(), v.Principal.WorkspaceID, r.PathValue("name"))
	var te *tools.Error
	if errors.As(err, &te) && te.Code == tools.CodeSkillNotFound {
		h.notFound(w, r, "skill")
		return
	}
	if err != nil {
		h.internal(w, r, "delete skill", err)
		return
	}
	http.Redirect(w, r, "/skills?done=deleted", http.StatusSeeOther)
}
