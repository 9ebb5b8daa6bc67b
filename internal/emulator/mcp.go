package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// mcpEndpoint is one Sentinel MCP server (data exploration or triage)
// behind the checks a Microsoft front end does: bearer token, audience,
// tenant pin, and the gateway faults.
type mcpEndpoint struct {
	e          *Emulator
	path       string // /mcp/data-exploration
	endpoint   string // stats and fault target: mcp/data-exploration
	audience   string // resource app id the access token must be for
	permission string // delegated permission the token must carry (scp)
	server     *mcp.Server
	handler    http.Handler
}

// newMCPEndpoint builds an MCP server whose tools register adds, served
// over streamable HTTP with sessions (Mcp-Session-Id) and JSON answers.
func (e *Emulator) newMCPEndpoint(name, audience, permission string, register func(*mcp.Server)) *mcpEndpoint {
	ep := &mcpEndpoint{
		e:          e,
		path:       "/mcp/" + name,
		endpoint:   "mcp/" + name,
		audience:   audience,
		permission: permission,
	}
	ep.server = mcp.NewServer(&mcp.Implementation{Name: "sentinel-" + name, Title: "Microsoft Sentinel MCP: " + name, Version: "1.0.0"}, nil)
	register(ep.server)
	streamable := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return ep.server }, &mcp.StreamableHTTPOptions{
		JSONResponse: true,
		// Reachable under any host name (a container name, a tunnel): the
		// emulator stands in for a public service.
		DisableLocalhostProtection: true,
		SessionTimeout:             30 * time.Minute,
	})
	// The SDK's bearer middleware puts the caller's identity on the
	// request, where tool handlers find it (CallToolRequest.Extra). The
	// token itself was already checked by ServeHTTP with the emulator's
	// clock.
	ep.handler = auth.RequireBearerToken(func(ctx context.Context, _ string, _ *http.Request) (*auth.TokenInfo, error) {
		c, ok := ctx.Value(claimsCtxKey{}).(*tokenClaims)
		if !ok {
			return nil, auth.ErrInvalidToken
		}
		return &auth.TokenInfo{
			Scopes:     strings.Fields(c.Scp),
			Expiration: time.Now().Add(24 * time.Hour),
			UserID:     c.Tid + "/" + c.Oid,
			Extra:      map[string]any{"tid": c.Tid, "oid": c.Oid, "upn": c.Username},
		}, nil
	}, nil)(streamable)
	return ep
}

type claimsCtxKey struct{}

// caller returns the tenant of the access token that carried a tool call.
func caller(req *mcp.CallToolRequest) string {
	if req == nil || req.Extra == nil || req.Extra.TokenInfo == nil {
		return ""
	}
	tid, _ := req.Extra.TokenInfo.Extra["tid"].(string)
	return tid
}

// ServeHTTP checks the bearer token, counts the request, applies faults
// and hands the request to the MCP server.
func (ep *mcpEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e := ep.e
	claims, problem := ep.authenticate(r)
	if problem != "" {
		e.count("", ep.endpoint)
		ep.unauthorized(w, r, problem)
		return
	}
	if pin := r.Header.Get("x-mcp-client-tenant-id"); pin != "" && !strings.EqualFold(pin, claims.Tid) {
		e.count(claims.Tid, ep.endpoint)
		ep.unauthorized(w, r, fmt.Sprintf("The access token was issued for tenant %s, but the request is pinned to tenant %s (x-mcp-client-tenant-id).", claims.Tid, pin))
		return
	}
	r = r.WithContext(context.WithValue(context.WithValue(r.Context(), claimsCtxKey{}, claims), tenantCtxKey{}, claims.Tid))

	// Which tools does this POST call? Read the JSON-RPC body and put it
	// back for the MCP server.
	var tools []string
	if r.Method == http.MethodPost && r.Body != nil {
		body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
		if err != nil {
			http.Error(w, "cannot read request body", http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		tools = toolCalls(body)
	}
	e.count(claims.Tid, ep.endpoint)
	for _, t := range tools {
		e.countTool(claims.Tid, t)
	}
	if r.Method != http.MethodPost {
		// GET opens the server-to-client event stream: no buffering.
		if e.applyHTTPFaults(w, r, claims.Tid, ep.endpoint, "", styleGateway) {
			return
		}
		ep.handler.ServeHTTP(w, r)
		return
	}
	withTruncation(w, func(w http.ResponseWriter) {
		if e.applyHTTPFaults(w, r, claims.Tid, ep.endpoint, "", styleGateway, tools...) {
			return
		}
		ep.handler.ServeHTTP(w, r)
	})
}

// toolCalls returns the names of the tools a JSON-RPC message or batch
// calls.
func toolCalls(body []byte) []string {
	type msg struct {
		Method string `json:"method"`
		Params struct {
			Name string `json:"name"`
		} `json:"params"`
	}
	var msgs []msg
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		_ = json.Unmarshal(trimmed, &msgs)
	} else {
		var m msg
		if json.Unmarshal(trimmed, &m) == nil {
			msgs = []msg{m}
		}
	}
	var out []string
	for _, m := range msgs {
		if m.Method == "tools/call" && m.Params.Name != "" {
			out = append(out, m.Params.Name)
		}
	}
	return out
}

// authenticate checks the bearer token: signature, lifetime (by the
// emulator's clock), audience, permission and tenant. It returns a problem
// text when the token is not acceptable.
func (ep *mcpEndpoint) authenticate(r *http.Request) (*tokenClaims, string) {
	h := r.Header.Get("Authorization")
	scheme, raw, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(raw) == "" {
		return nil, "Bearer access token is missing."
	}
	c, err := ep.e.keys.verify(strings.TrimSpace(raw))
	if err != nil {
		return nil, capitalize(err.Error()) + "."
	}
	now := ep.e.now().Unix()
	switch {
	case c.Expiry == 0 || now >= c.Expiry:
		return nil, fmt.Sprintf("The access token expired at %s.", fmtStamp(time.Unix(c.Expiry, 0)))
	case c.NotBefore != 0 && now < c.NotBefore:
		return nil, "The access token is not yet valid."
	case c.Aud != ep.audience:
		return nil, fmt.Sprintf("The access token audience %q is invalid; this resource expects %q.", c.Aud, ep.audience)
	case !slices.Contains(strings.Fields(c.Scp), ep.permission):
		return nil, fmt.Sprintf("The access token lacks the delegated permission %s.", ep.permission)
	}
	ep.e.mu.Lock()
	known := ep.e.tenant(c.Tid) != nil
	ep.e.mu.Unlock()
	if !known {
		return nil, fmt.Sprintf("The tenant %s of the access token is unknown.", c.Tid)
	}
	return c, ""
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// unauthorized answers 401 with a WWW-Authenticate challenge naming the
// authority and the protected resource metadata (RFC 9728), as an MCP
// server protected by Entra does.
func (ep *mcpEndpoint) unauthorized(w http.ResponseWriter, r *http.Request, problem string) {
	base := baseURL(r)
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(
		`Bearer realm="%s", authorization_uri="%s/organizations/oauth2/v2.0/authorize", error="invalid_token", error_description="%s", resource_metadata="%s/.well-known/oauth-protected-resource%s"`,
		base+ep.path, base, strings.ReplaceAll(problem, `"`, "'"), base, ep.path))
	ep.e.countError(r, "401")
	writeJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]any{"code": "InvalidAuthenticationToken", "message": problem}})
}

// serveResourceMetadata serves the OAuth protected resource metadata of
// the server (RFC 9728).
func (ep *mcpEndpoint) serveResourceMetadata(w http.ResponseWriter, r *http.Request) {
	base := baseURL(r)
	writeJSON(w, http.StatusOK, map[string]any{
		"resource":                 base + ep.path,
		"authorization_servers":    []string{base + "/organizations/v2.0"},
		"scopes_supported":         []string{ep.audience + "/.default"},
		"bearer_methods_supported": []string{"header"},
	})
}

// toolError is a tool result that reports a failure to the caller (the
// model), as MCP servers do for errors that are not protocol errors.
func toolError(format string, args ...any) *mcp.CallToolResult {
	return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf(format, args...)}}}
}

// toolJSON is a tool result holding JSON text.
func toolJSON(v any) (*mcp.CallToolResult, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, errors.New("emulator: encode tool result")
	}
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(b)}}}, nil
}

// Close ends every open MCP session, and with them the server-to-client
// event streams (GET) that would otherwise keep an http.Server or an
// httptest.Server from shutting down: call it before closing the server.
// The emulator keeps serving; clients may open new sessions.
func (e *Emulator) Close() error {
	for _, ep := range e.mcpServers {
		var sessions []*mcp.ServerSession
		for ss := range ep.server.Sessions() {
			sessions = append(sessions, ss)
		}
		for _, ss := range sessions {
			_ = ss.Close()
		}
	}
	return nil
}
