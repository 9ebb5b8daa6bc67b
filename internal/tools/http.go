package tools

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/clarion/sentinel/internal/api"
	"github.com/clarion/sentinel/internal/store"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Handler serves the tools over HTTP:
//
//   - /mcp/skills/{skill}                          MCP (streamable HTTP, stateless) with the skill's tools
//     POST   /api/v1/tools/{name}?skill={skill}            call one tool; the body is its arguments (a JSON object)
//     GET    /api/v1/toolsets                              the toolsets and their tools, with input schemas
//     GET    /api/v1/skills                                the workspace's skills
//     POST   /api/v1/skills                                create: {"name","description","toolsets":[…]}
//     GET    /api/v1/skills/{skill}                        one skill with its tools and their input schemas
//     DELETE /api/v1/skills/{skill}                        delete a skill (its audit records stay)
//     PUT    /api/v1/skills/{skill}/toolsets/{toolset}     attach a toolset (idempotent)
//     DELETE /api/v1/skills/{skill}/toolsets/{toolset}     detach a toolset (idempotent)
//     GET    /api/v1/audit                                 tool calls, newest first: skill, tool, limit (≤ 500), cursor
//
// Every route needs the workspace's API token (Authorization: Bearer …),
// or a principal already on the request (the web UI's session), and sees
// only that workspace's skills, calls and connection.
type Handler struct {
	svc *Service
	log *slog.Logger
	mcp http.Handler
}

// NewHandler builds the HTTP side of svc.
func NewHandler(svc *Service) *Handler {
	h := &Handler{svc: svc, log: svc.log()}
	// Stateless: every request reads the skill from the store, so a
	// toolset attached or detached shows at the next tools/list, any
	// replica can answer any request, and no session outlives a token.
	// Tokens, not cookies, authenticate these requests, so the SDK's DNS
	// rebinding guard (which would refuse a reverse proxy's Host) is off.
	h.mcp = mcp.NewStreamableHTTPHandler(func(r *http.Request) *mcp.Server {
		if mr, ok := r.Context().Value(mcpRequestKey{}).(*mcpRequest); ok {
			return mr.srv
		}
		return nil
	}, &mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true, DisableLocalhostProtection: true, Logger: h.log})
	return h
}

// Register adds the routes to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("/mcp/skills/{skill}", h.serveMCP)
	mux.HandleFunc("POST /api/v1/tools/{name}", h.auth(h.callTool))
	mux.HandleFunc("GET /api/v1/toolsets", h.auth(h.listToolsets))
	mux.HandleFunc("GET /api/v1/skills", h.auth(h.listSkills))
	mux.HandleFunc("POST /api/v1/skills", h.auth(h.createSkill))
	mux.HandleFunc("GET /api/v1/skills/{skill}", h.auth(h.getSkill))
	mux.HandleFunc("DELETE /api/v1/skills/{skill}", h.auth(h.deleteSkill))
	mux.HandleFunc("PUT /api/v1/skills/{skill}/toolsets/{toolset}", h.auth(h.attach))
	mux.HandleFunc("DELETE /api/v1/skills/{skill}/toolsets/{toolset}", h.auth(h.detach))
	mux.HandleFunc("GET /api/v1/audit", h.auth(h.audit))
}

// mcpRequestKey carries an MCP request's *mcpRequest on its context: the
// SDK hands the request's context to the tool handlers of the stateless
// session it makes for the request.
type mcpRequestKey struct{}

// mcpRequest is what one MCP request runs with: its caller, the skill as
// read for this request, and the skill's server.
type mcpRequest struct {
	caller Caller
	skill  store.Skill
	srv    *mcp.Server
}

// ---- authentication ----

// authenticate resolves the request's caller the way every Clarion route
// does (api.Authenticate), writing the 401 itself on failure.
func (h *Handler) authenticate(w http.ResponseWriter, r *http.Request) (Caller, bool) {
	p, ok := api.Authenticate(h.svc.Store, h.log, w, r)
	return Caller{WorkspaceID: p.WorkspaceID, TokenID: p.TokenID, UserID: p.UserID}, ok
}

func (h *Handler) auth(fn func(http.ResponseWriter, *http.Request, Caller)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if c, ok := h.authenticate(w, r); ok {
			fn(w, r, c)
		}
	}
}

// ---- MCP ----

func (h *Handler) serveMCP(w http.ResponseWriter, r *http.Request) {
	c, ok := h.authenticate(w, r)
	if !ok {
		return
	}
	sk, err := h.svc.GetSkill(r.Context(), c.WorkspaceID, r.PathValue("skill"))
	if err != nil {
		h.writeErr(w, err)
		return
	}
	mr := &mcpRequest{caller: c, skill: sk, srv: h.svc.skillServer(sk)}
	h.mcp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), mcpRequestKey{}, mr)))
}

// skillServer is an MCP server with the tools of a skill as it is now. A
// server is built once per version of a skill and then shared by the
// requests that read that same version: it holds nothing of a caller, whose
// identity its tools take from the request (mcpRequest).
func (s *Service) skillServer(sk store.Skill) *mcp.Server {
	return s.servers.get(sk, s.buildSkillServer)
}

func (s *Service) buildSkillServer(sk store.Skill) *mcp.Server {
	var names []string
	for _, id := range sk.Toolsets {
		if ts, ok := ToolsetByID(id); ok {
			names = append(names, ts.Name)
		}
	}
	if len(names) == 0 {
		names = []string{"none"}
	}
	instr := fmt.Sprintf("Clarion skill %q", sk.Name)
	if sk.Description != "" {
		instr += ": " + sk.Description
	}
	instr += ". Toolsets: " + strings.Join(names, ", ") + ". " +
		"Every tool runs with this Clarion workspace's own Microsoft Sentinel connection. " +
		"A failed call is a tool error whose text ends with an error code (e.g. reconnect_required, defender_mcp_not_enabled, not_onboarded, throttled, not_found, invalid_argument) and says what to do. " +
		"Large answers are capped and then carry \"truncated\": true and a note."
	srv := mcp.NewServer(&mcp.Implementation{Name: "clarion-sentinel", Title: "Clarion skill " + sk.Name, Version: "1"},
		&mcp.ServerOptions{Instructions: instr, HasTools: true, Logger: s.log()})
	yes := true
	for _, t := range ToolsOf(sk.Toolsets) {
		srv.AddTool(&mcp.Tool{
			Name: t.Name, Title: t.Title, Description: t.Description, InputSchema: t.InputSchema(),
			Annotations: &mcp.ToolAnnotations{Title: t.Title, ReadOnlyHint: true, OpenWorldHint: &yes},
		}, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			// The server is shared: the caller and the skill come from this
			// request alone. Without them, or with another skill than the
			// one this server was built for, nothing runs.
			mr, ok := ctx.Value(mcpRequestKey{}).(*mcpRequest)
			if !ok || mr.skill.ID != sk.ID || mr.skill.WorkspaceID != mr.caller.WorkspaceID {
				e := s.internal("mcp tool call", fmt.Errorf("tools: request of skill %q has no caller or another skill", sk.Name))
				return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: e.Text()}}}, nil
			}
			var args json.RawMessage
			if req.Params != nil {
				args = req.Params.Arguments
			}
			// The SDK's server puts the agent's protocol version on ctx,
			// and its client (package sentinel) would send that version
			// to Microsoft: call with ctx's cancellation only.
			cctx, cancel := detach(ctx)
			defer cancel()
			res := s.callSkill(cctx, mr.caller, mr.skill, t.Name, args)
			if res.Err != nil {
				return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: res.Err.Text()}}}, nil
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(res.Result)}}}, nil
		})
	}
	return srv
}

// detach returns a context that ends when ctx ends, with none of ctx's
// values.
func detach(ctx context.Context) (context.Context, context.CancelFunc) {
	out, cancel := context.WithCancel(context.Background())
	if d, ok := ctx.Deadline(); ok {
		var c2 context.CancelFunc
		out, c2 = context.WithDeadline(out, d)
		prev := cancel
		cancel = func() { c2(); prev() }
	}
	stop := context.AfterFunc(ctx, cancel)
	return out, func() { stop(); cancel() }
}

// ---- JSON API ----

// maxArgsBody bounds the arguments of a call (KQL is at most 800
// characters; the rest are small).
const maxArgsBody = 64 << 10

func (h *Handler) callTool(w http.ResponseWriter, r *http.Request, c Caller) {
	skill := r.URL.Query().Get("skill")
	if strings.TrimSpace(skill) == "" {
		writeError(w, &apiError{status: http.StatusBadRequest, code: CodeInvalidArgument, field: "skill",
			msg: "Name the skill whose tool to call: POST /api/v1/tools/{name}?skill={skill}. List skills with GET /api/v1/skills."})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxArgsBody))
	if err != nil {
		writeError(w, &apiError{status: http.StatusRequestEntityTooLarge, code: "body_too_large", msg: fmt.Sprintf("The arguments are larger than %d bytes.", maxArgsBody)})
		return
	}
	name := r.PathValue("name")
	res := h.svc.Call(r.Context(), c, skill, name, body)
	if res.Err != nil {
		h.writeErr(w, res.Err)
		return
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, `{"tool":%s,"skill":%s,"truncated":%t,"result":`, jsonString(name), jsonString(strings.ToLower(strings.TrimSpace(skill))), res.Truncated)
	buf.Write(res.Result)
	buf.WriteString("}\n")
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// ToolView is the JSON shape of a tool.
type ToolView struct {
	Name        string          `json:"name"`
	Title       string          `json:"title"`
	Description string          `json:"description"`
	Toolset     string          `json:"toolset"`
	InputSchema json.RawMessage `json:"input_schema,omitempty"`
}

// ToolsetView is the JSON shape of a toolset.
type ToolsetView struct {
	ID          string     `json:"id"`
	Name        string     `json:"name"`
	Description string     `json:"description"`
	Tools       []ToolView `json:"tools,omitempty"`
}

// SkillView is the JSON shape of a skill.
type SkillView struct {
	Name        string        `json:"name"`
	Description string        `json:"description"`
	Toolsets    []ToolsetView `json:"toolsets"`
	Tools       []ToolView    `json:"tools"`
	MCPPath     string        `json:"mcp_path"`
	CreatedAt   time.Time     `json:"created_at"`
	UpdatedAt   time.Time     `json:"updated_at"`
}

func toolView(t *Tool, schema bool) ToolView {
	v := ToolView{Name: t.Name, Title: t.Title, Description: t.Description, Toolset: t.Toolset}
	if schema {
		v.InputSchema = t.InputSchema()
	}
	return v
}

func skillView(sk store.Skill, schemas bool) SkillView {
	v := SkillView{Name: sk.Name, Description: sk.Description, Toolsets: []ToolsetView{}, Tools: []ToolView{},
		MCPPath: "/mcp/skills/" + sk.Name, CreatedAt: sk.CreatedAt, UpdatedAt: sk.UpdatedAt}
	for _, id := range sk.Toolsets {
		if ts, ok := ToolsetByID(id); ok {
			v.Toolsets = append(v.Toolsets, ToolsetView{ID: ts.ID, Name: ts.Name, Description: ts.Description})
		}
	}
	for _, t := range ToolsOf(sk.Toolsets) {
		v.Tools = append(v.Tools, toolView(t, schemas))
	}
	return v
}

func (h *Handler) listToolsets(w http.ResponseWriter, r *http.Request, c Caller) {
	out := []ToolsetView{}
	for _, ts := range Toolsets {
		v := ToolsetView{ID: ts.ID, Name: ts.Name, Description: ts.Description}
		for _, t := range ts.Tools {
			v.Tools = append(v.Tools, toolView(t, true))
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"toolsets": out})
}

func (h *Handler) listSkills(w http.ResponseWriter, r *http.Request, c Caller) {
	sks, err := h.svc.ListSkills(r.Context(), c.WorkspaceID)
	if err != nil {
		h.writeErr(w, err)
		return
	}
	out := make([]SkillView, 0, len(sks))
	for _, sk := range sks {
		out = append(out, skillView(sk, false))
	}
	writeJSON(w, http.StatusOK, map[string]any{"skills": out})
}

func (h *Handler) createSkill(w http.ResponseWriter, r *http.Request, c Caller) {
	var in struct {
		Name        string   `json:"name"`
		Description string   `json:"description"`
		Toolsets    []string `json:"toolsets"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		writeError(w, &apiError{status: http.StatusBadRequest, code: "invalid_json",
			msg: `The body must be a JSON object: {"name": "triage", "description": "…", "toolsets": ["sentinel-triage", "sentinel-datalake"]}.`})
		return
	}
	sk, err := h.svc.CreateSkill(r.Context(), c.WorkspaceID, in.Name, in.Description, in.Toolsets)
	if err != nil {
		h.writeErr(w, err)
		return
	}
	w.Header().Set("Location", "/api/v1/skills/"+sk.Name)
	writeJSON(w, http.StatusCreated, skillView(sk, true))
}

func (h *Handler) getSkill(w http.ResponseWriter, r *http.Request, c Caller) {
	sk, err := h.svc.GetSkill(r.Context(), c.WorkspaceID, r.PathValue("skill"))
	if err != nil {
		h.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, skillView(sk, true))
}

func (h *Handler) deleteSkill(w http.ResponseWriter, r *http.Request, c Caller) {
	if err := h.svc.DeleteSkill(r.Context(), c.WorkspaceID, r.PathValue("skill")); err != nil {
		h.writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) attach(w http.ResponseWriter, r *http.Request, c Caller) {
	sk, err := h.svc.AttachToolset(r.Context(), c.WorkspaceID, r.PathValue("skill"), r.PathValue("toolset"))
	if err != nil {
		h.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, skillView(sk, true))
}

func (h *Handler) detach(w http.ResponseWriter, r *http.Request, c Caller) {
	sk, err := h.svc.DetachToolset(r.Context(), c.WorkspaceID, r.PathValue("skill"), r.PathValue("toolset"))
	if err != nil {
		h.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, skillView(sk, true))
}

// ToolCallView is the JSON shape of an audit record.
type ToolCallView struct {
	ID         string          `json:"id"`
	Skill      string          `json:"skill"`
	Tool       string          `json:"tool"`
	TokenID    string          `json:"token_id,omitempty"`
	UserID     string          `json:"user_id,omitempty"`
	Arguments  json.RawMessage `json:"arguments"`
	Outcome    string          `json:"outcome"`
	Error      string          `json:"error,omitempty"`
	DurationMS float64         `json:"duration_ms"`
	CalledAt   time.Time       `json:"called_at"`
}

func (h *Handler) audit(w http.ResponseWriter, r *http.Request, c Caller) {
	q := r.URL.Query()
	f := store.ToolCallFilter{Skill: strings.ToLower(strings.TrimSpace(q.Get("skill"))), Tool: q.Get("tool"), Limit: store.DefaultToolCallLimit}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > store.MaxToolCallLimit {
			writeError(w, &apiError{status: http.StatusBadRequest, code: "invalid_field", field: "limit",
				msg: fmt.Sprintf("limit must be a whole number from 1 to %d.", store.MaxToolCallLimit)})
			return
		}
		f.Limit = n
	}
	if cur := q.Get("cursor"); cur != "" {
		at, id, ok := store.DecodeCursor(cur)
		if !ok {
			writeError(w, &apiError{status: http.StatusBadRequest, code: "invalid_field", field: "cursor", msg: "cursor is not one this API returned."})
			return
		}
		f.BeforeCalledAt, f.BeforeID = at, id
	}
	calls, err := h.svc.Audit(r.Context(), c.WorkspaceID, f)
	if err != nil {
		h.writeErr(w, err)
		return
	}
	out := make([]ToolCallView, 0, len(calls))
	for _, tc := range calls {
		args := json.RawMessage(tc.Arguments)
		if !json.Valid(args) {
			args, _ = json.Marshal(tc.Arguments)
		}
		out = append(out, ToolCallView{ID: tc.ID, Skill: tc.Skill, Tool: tc.Tool, TokenID: tc.TokenID, UserID: tc.UserID,
			Arguments: args, Outcome: tc.Outcome, Error: tc.Error, DurationMS: float64(tc.Duration.Microseconds()) / 1000, CalledAt: tc.CalledAt})
	}
	resp := map[string]any{"calls": out}
	if len(calls) == f.Limit {
		last := calls[len(calls)-1]
		resp["next_cursor"] = store.EncodeCursor(last.CalledAt, last.ID)
	}
	writeJSON(w, http.StatusOK, resp)
}

// ---- errors ----

type apiError struct {
	status     int
	code, msg  string
	field      string
	retryAfter time.Duration
}

func (h *Handler) writeErr(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		h.log.Error("tools: request failed", "err", err)
		e = &Error{Code: CodeInternal, Message: "Something went wrong on Clarion's side; the error was logged."}
	}
	writeError(w, &apiError{status: e.HTTPStatus(), code: e.Code, msg: e.Message, field: e.Field, retryAfter: e.RetryAfter})
}

func writeError(w http.ResponseWriter, e *apiError) {
	detail := map[string]any{"code": e.code, "message": e.msg}
	if e.field != "" {
		detail["field"] = e.field
	}
	if e.retryAfter > 0 {
		secs := retrySeconds(e.retryAfter)
		detail["retry_after_seconds"] = secs
		w.Header().Set("Retry-After", strconv.Itoa(secs))
	}
	writeJSON(w, e.status, map[string]any{"error": detail})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
