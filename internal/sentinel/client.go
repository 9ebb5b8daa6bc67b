package sentinel

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The Sentinel MCP servers, as path segments under the MCP base URL.
const (
	ServerDataExploration = "data-exploration"
	ServerTriage          = "triage"
)

// protocolVersion is the MCP version Clarion asks for. Naming a released
// version skips the SDK's server/discover probe (a 2026 draft revision),
// which servers of today answer with an error: an extra request per session,
// and a second one to a tenant that is being throttled. The server may
// negotiate an older version.
const protocolVersion = "2025-11-25"

// Config configures a Client.
type Config struct {
	// BaseURL is the MCP base, e.g. https://sentinel.microsoft.com/mcp; the
	// servers are BaseURL/data-exploration and BaseURL/triage.
	BaseURL string
	// HTTP is the client whose transport and timeout are used (default
	// http.DefaultTransport, no timeout: give each call a context deadline).
	// Its redirect policy and cookie jar are not used: redirects are refused
	// so that no token follows one.
	HTTP   *http.Client
	Logger *slog.Logger
	// Now is the clock, used to read Retry-After dates (default time.Now).
	Now func() time.Time
}

// Token is a delegated access token for one resource and the Entra tenant it
// belongs to (sent as x-mcp-client-tenant-id).
type Token struct {
	Value    string
	TenantID string
}

// Workspace is a Sentinel workspace the tenant can see in the data lake.
type Workspace struct {
	ID   string
	Name string
}

// ToolResult is what an MCP tool answered.
type ToolResult struct {
	// Content holds the text contents in order (usually one, holding JSON).
	Content []string
	// Structured is the structured content, when the tool sent one.
	Structured json.RawMessage
	// IsError is set when the tool reported an error.
	IsError bool
}

// Text returns the text contents joined by newlines.
func (r *ToolResult) Text() string { return strings.Join(r.Content, "\n") }

// Err returns nil for a successful result, and for an error result an
// *UpstreamError with a short, safe message (wrapping ErrNotOnboarded when
// the answer says the tenant is not onboarded to the data lake).
func (r *ToolResult) Err() error {
	if r == nil || !r.IsError {
		return nil
	}
	text := r.Text()
	code := ""
	// Tools may answer with a JSON error object.
	var obj struct {
		Error   json.RawMessage `json:"error"`
		Code    json.RawMessage `json:"code"`
		Message string          `json:"message"`
	}
	if t := bytes.TrimSpace([]byte(text)); len(t) > 0 && t[0] == '{' && json.Unmarshal(t, &obj) == nil {
		code = jsonText(obj.Code)
		if obj.Message != "" {
			text = obj.Message
		}
		if e := bytes.TrimSpace(obj.Error); len(e) > 0 {
			c, m := errorFields(t, nil)
			if c != "" {
				code = c
			}
			if m != "" {
				text = m
			}
		}
	}
	if text == "" && len(r.Structured) > 0 {
		text = string(r.Structured)
	}
	return errorFromMessage(code, text)
}

// Client talks to the Sentinel MCP servers on behalf of tenants. It keeps one
// MCP session per (server, tenant, signed-in principal), re-initializing it
// when the server says it is gone; the bearer token is put on each request,
// so a session outlives token refreshes. A Client is safe for concurrent use.
type Client struct {
	base      *url.URL
	transport http.RoundTripper
	timeout   time.Duration
	log       *slog.Logger
	now       func() time.Time
	mcp       *mcp.Client

	mu       sync.Mutex
	sessions map[sessionKey]*pooledSession
	closed   bool
	closing  sync.WaitGroup // sessions being closed in the background; Add under mu while !closed
}

// New returns a Client. A BaseURL that does not parse leaves every call
// failing with an error saying so.
func New(cfg Config) *Client {
	c := &Client{
		transport: http.DefaultTransport,
		log:       cfg.Logger,
		now:       cfg.Now,
		sessions:  map[sessionKey]*pooledSession{},
	}
	if cfg.HTTP != nil {
		if cfg.HTTP.Transport != nil {
			c.transport = cfg.HTTP.Transport
		}
		c.timeout = cfg.HTTP.Timeout
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	if u, err := url.Parse(strings.TrimRight(strings.TrimSpace(cfg.BaseURL), "/")); err == nil && u.Host != "" &&
		(u.Scheme == "https" || u.Scheme == "http") && u.User == nil {
		u.RawQuery, u.Fragment = "", ""
		c.base = u
	}
	c.mcp = mcp.NewClient(&mcp.Implementation{Name: "clarion", Version: "1"},
		&mcp.ClientOptions{Capabilities: &mcp.ClientCapabilities{}})
	return c
}

// errClosed is returned by calls on a closed Client.
var errClosed = errors.New("sentinel: client closed")

// Close ends every MCP session and waits for sessions being closed in the
// background. Calls after Close fail.
func (c *Client) Close() error {
	c.mu.Lock()
	sessions := c.sessions
	c.sessions = map[sessionKey]*pooledSession{}
	c.closed = true
	c.mu.Unlock()
	var errs []error
	for _, ps := range sessions {
		ps.mu.Lock()
		if ps.cs != nil {
			errs = append(errs, ps.cs.Close())
			ps.cs = nil
		}
		ps.mu.Unlock()
	}
	c.closing.Wait()
	return errors.Join(errs...)
}

// ListWorkspaces lists the Sentinel workspaces of the token's tenant
// (list_sentinel_workspaces). A tenant not onboarded to the data lake gives
// an error wrapping ErrNotOnboarded.
func (c *Client) ListWorkspaces(ctx context.Context, tok Token) ([]Workspace, error) {
	res, err := c.CallTool(ctx, tok, ServerDataExploration, "list_sentinel_workspaces", nil)
	if err != nil {
		return nil, err
	}
	ws, err := parseWorkspaces(res)
	if err != nil {
		return nil, fmt.Errorf("sentinel: list_sentinel_workspaces: %w", err)
	}
	return ws, nil
}

// QueryLake runs one KQL query against a workspace of the data lake
// (query_lake) and returns its result set. KQL longer than MaxQueryChars is
// refused with ErrQueryTooLong before any request.
func (c *Client) QueryLake(ctx context.Context, tok Token, workspaceID, kql string) (*Table, error) {
	args := map[string]any{"query": kql}
	if workspaceID != "" {
		args["workspaceId"] = workspaceID
	}
	res, err := c.CallTool(ctx, tok, ServerDataExploration, "query_lake", args)
	if err != nil {
		return nil, err
	}
	t, err := ParseToolResult(res)
	if err != nil {
		return nil, fmt.Errorf("sentinel: query_lake: %w", err)
	}
	return t, nil
}

// PollIncidents runs one poll page (see PollQuery) against a workspace and
// returns its incidents, with TenantID set to the token's tenant. Row errors
// are returned as ParseIncidents returns them.
func (c *Client) PollIncidents(ctx context.Context, tok Token, workspaceID string, p PollParams) ([]Incident, error) {
	kql, err := PollQuery(p)
	if err != nil {
		return nil, err
	}
	page, err := c.QueryIncidents(ctx, tok, workspaceID, kql)
	if err != nil {
		return nil, err
	}
	return page.Incidents, errors.Join(page.Invalid...)
}

// SearchTables searches the data lake's table catalog (search_tables) and
// returns the answer's JSON as the tool sent it (a non-JSON text answer comes
// back as a JSON string).
func (c *Client) SearchTables(ctx context.Context, tok Token, query, workspaceID string) (json.RawMessage, error) {
	args := map[string]any{"query": query}
	if workspaceID != "" {
		args["workspaceId"] = workspaceID
	}
	res, err := c.CallTool(ctx, tok, ServerDataExploration, "search_tables", args)
	if err != nil {
		return nil, err
	}
	return res.JSON(), nil
}

// JSON returns the result's JSON: the first text content that is valid JSON,
// else the structured content, else the text as a JSON string.
func (r *ToolResult) JSON() json.RawMessage {
	for _, t := range r.Content {
		if b := bytes.TrimSpace([]byte(t)); len(b) > 0 && json.Valid(b) {
			return json.RawMessage(b)
		}
	}
	if len(r.Structured) > 0 {
		return bytes.Clone(r.Structured)
	}
	b, _ := json.Marshal(r.Text())
	return b
}

// kqlArguments names, per tool, the argument that holds KQL, so that
// Microsoft's 800-character limit is enforced before any request.
var kqlArguments = map[string]string{
	"query_lake":              "query",
	"RunAdvancedHuntingQuery": "kqlQuery",
}

// CallTool calls one tool of one Sentinel MCP server (ServerDataExploration
// or ServerTriage) with the token's delegated access.
//
// When the tool reports an error (IsError), the result is returned together
// with its Err(): an *UpstreamError. Other failures return a nil result and
// an error that Throttled, Transient and Unauthorized classify.
func (c *Client) CallTool(ctx context.Context, tok Token, server, tool string, args map[string]any) (*ToolResult, error) {
	if server != ServerDataExploration && server != ServerTriage {
		return nil, fmt.Errorf("sentinel: unknown MCP server %q", server)
	}
	if c.base == nil {
		return nil, errors.New("sentinel: no valid MCP base URL configured")
	}
	if tok.Value == "" || tok.TenantID == "" {
		return nil, errors.New("sentinel: a token and its tenant are required")
	}
	if !headerSafe(tok.Value) || !headerSafe(tok.TenantID) {
		return nil, errors.New("sentinel: the token or tenant holds characters a header cannot carry")
	}
	if name, ok := kqlArguments[tool]; ok {
		if q, ok := args[name].(string); ok {
			if err := checkQueryLength(q); err != nil {
				return nil, fmt.Errorf("sentinel: %s: %w", tool, err)
			}
		}
	}
	if args == nil {
		args = map[string]any{}
	}
	key := sessionKey{server: server, tenant: tok.TenantID, principal: principalOf(tok.Value)}
	log := c.log.With("mcp_server", server, "tool", tool, "tenant_id", tok.TenantID)

	for attempt := 0; ; attempt++ {
		ps, err := c.pooled(key)
		if err != nil {
			return nil, err
		}
		ci := &callInfo{token: tok.Value, tenant: tok.TenantID}
		cctx := withCall(ctx, ci)
		res, cs, err := ps.call(cctx, c, tok, tool, args)
		ci.finished.Store(true)
		if err == nil {
			r := toolResult(res)
			return r, r.Err()
		}
		snap := ci.snapshot()
		gone := errors.Is(err, mcp.ErrSessionMissing) || (snap.failStatus == http.StatusNotFound && cs != nil && cs.ID() != "")
		if cs != nil && shouldDrop(ctx, err, snap) {
			c.drop(ps, cs)
			log.Debug("sentinel: MCP session dropped", "session_gone", gone)
		}
		if gone && attempt == 0 {
			log.Debug("sentinel: MCP session gone; initializing a new one")
			continue
		}
		return nil, fmt.Errorf("sentinel: %s: %w", tool, classify(ctx, err, snap))
	}
}

// headerSafe reports whether s can go into a header value as it is: printable
// ASCII without spaces, as tokens and tenant ids are.
func headerSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// classify turns what the SDK returned, and what the transport saw, into the
// package's errors.
func classify(ctx context.Context, err error, s callSnapshot) error {
	if s.failStatus != 0 {
		ue := &UpstreamError{Status: s.failStatus, RetryAfter: s.retryAfter, Code: s.code, Message: s.msg}
		if ue.Message == "" {
			ue.Message = http.StatusText(s.failStatus)
		}
		if saysNotOnboarded(s.code) || saysNotOnboarded(s.msg) {
			ue.cause = ErrNotOnboarded
		}
		return ue
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	var werr *jsonrpc.Error
	if errors.As(err, &werr) && s.bodyErr == nil {
		return errorFromMessage(fmt.Sprintf("jsonrpc %d", werr.Code), werr.Message)
	}
	switch {
	case s.transportErr != nil:
		if errors.Is(s.transportErr, errForeignHost) {
			return errForeignHost
		}
		return &transportError{what: "connection to Microsoft failed", err: s.transportErr}
	case s.bodyErr != nil:
		return fmt.Errorf("%w: the answer was cut off (%v)", ErrInvalidResponse, s.bodyErr)
	case s.okResponses > 0:
		// Microsoft answered with success, but the SDK could not read a
		// JSON-RPC answer out of it.
		return fmt.Errorf("%w: %s", ErrInvalidResponse, safeText(err.Error(), 200))
	}
	return err
}

// shouldDrop reports whether the session is unusable after err. The SDK keeps
// the connection after throttling, 5xx, a JSON-RPC error answer and a
// cancelled call; anything else breaks it.
func shouldDrop(ctx context.Context, err error, s callSnapshot) bool {
	switch s.failStatus {
	case 0:
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return false
	default:
		return true
	}
	if ctx.Err() != nil {
		return false
	}
	var werr *jsonrpc.Error
	if errors.As(err, &werr) && s.transportErr == nil && s.bodyErr == nil {
		return false
	}
	return true
}

func toolResult(res *mcp.CallToolResult) *ToolResult {
	r := &ToolResult{IsError: res.IsError}
	for _, c := range res.Content {
		switch c := c.(type) {
		case *mcp.TextContent:
			r.Content = append(r.Content, c.Text)
		case *mcp.EmbeddedResource:
			if c.Resource != nil && c.Resource.Text != "" {
				r.Content = append(r.Content, c.Resource.Text)
			}
		}
	}
	if res.StructuredContent != nil {
		if b, err := json.Marshal(res.StructuredContent); err == nil {
			r.Structured = b
		}
	}
	return r
}

// ParseToolResult reads the KQL result set out of a tool's answer: the first
// text content holding a table (see ParseTable), else the structured content.
// An error result gives its Err().
func ParseToolResult(r *ToolResult) (*Table, error) {
	if r == nil {
		return nil, errors.New("sentinel: no tool result")
	}
	if err := r.Err(); err != nil {
		return nil, err
	}
	var firstErr error
	for _, text := range r.Content {
		if strings.TrimSpace(text) == "" {
			continue
		}
		t, err := ParseTable([]byte(text))
		if err == nil {
			return t, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if len(r.Structured) > 0 {
		t, err := ParseTable(r.Structured)
		if err == nil {
			return t, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if firstErr == nil {
		firstErr = fmt.Errorf("%w: the tool answered with no content", ErrInvalidResponse)
	}
	return nil, firstErr
}

// parseWorkspaces reads list_sentinel_workspaces' answer, whose shape is not
// documented: an array of objects, an object holding one ("workspaces",
// "value", ...), or a table; ids and names under the usual spellings.
func parseWorkspaces(r *ToolResult) ([]Workspace, error) {
	data := r.JSON()
	var items []map[string]any
	if err := json.Unmarshal(data, &items); err != nil {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(data, &obj); err != nil {
			return nil, fmt.Errorf("%w: workspaces: %v", ErrInvalidResponse, err)
		}
		found := false
		for _, k := range []string{"workspaces", "value", "items", "data", "results"} {
			for ok, v := range obj {
				if strings.EqualFold(ok, k) && json.Unmarshal(v, &items) == nil {
					found = true
					break
				}
			}
			if found {
				break
			}
		}
		if !found {
			t, err := ParseTable(data)
			if err != nil {
				return nil, fmt.Errorf("workspaces: unrecognised answer: %w", err)
			}
			for i := range t.Rows {
				var m map[string]any
				if json.Unmarshal(t.RowObject(i), &m) == nil {
					items = append(items, m)
				}
			}
		}
	}
	out := make([]Workspace, 0, len(items))
	for _, it := range items {
		w := Workspace{
			ID:   pickString(it, "workspaceId", "customerId", "workspace_id", "id"),
			Name: pickString(it, "workspaceName", "name", "displayName", "workspace_name"),
		}
		if w.ID == "" {
			continue
		}
		out = append(out, w)
	}
	return out, nil
}

func pickString(m map[string]any, keys ...string) string {
	for _, k := range keys {
		for mk, v := range m {
			if strings.EqualFold(mk, k) {
				if s, ok := v.(string); ok && strings.TrimSpace(s) != "" {
					return strings.TrimSpace(s)
				}
			}
		}
	}
	return ""
}

// sessionKey names a pooled MCP session. A session is shared only by calls
// for the same server, tenant and signed-in principal: Microsoft may bind a
// session to the identity that opened it.
type sessionKey struct {
	server, tenant, principal string
}

// principalOf identifies who a token speaks for, for the session key only
// (never for trust; Microsoft checks the token): the oid (or sub) claim of a
// JWT, else a hash of the token.
func principalOf(token string) string {
	parts := strings.Split(token, ".")
	if len(parts) == 3 {
		if payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "=")); err == nil {
			var claims struct {
				OID string `json:"oid"`
				Sub string `json:"sub"`
			}
			if json.Unmarshal(payload, &claims) == nil {
				if claims.OID != "" {
					return "oid:" + claims.OID
				}
				if claims.Sub != "" {
					return "sub:" + claims.Sub
				}
			}
		}
	}
	sum := sha256.Sum256([]byte(token))
	return "tok:" + hex.EncodeToString(sum[:12])
}

func (c *Client) pooled(key sessionKey) (*pooledSession, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errClosed
	}
	ps := c.sessions[key]
	if ps == nil {
		ps = &pooledSession{key: key, auth: &sessionAuth{}}
		c.sessions[key] = ps
	}
	return ps, nil
}

// pooledSession is one reusable MCP session.
type pooledSession struct {
	key  sessionKey
	auth *sessionAuth

	mu sync.Mutex // guards cs and serialises initialization
	cs *mcp.ClientSession
}

// call runs one tool call on the session, initializing it first if needed.
// It returns the session used (nil when initialization failed).
func (ps *pooledSession) call(ctx context.Context, c *Client, tok Token, tool string, args map[string]any) (*mcp.CallToolResult, *mcp.ClientSession, error) {
	ps.auth.set(tok)
	cs, err := ps.session(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	return res, cs, err
}

func (ps *pooledSession) session(ctx context.Context, c *Client) (*mcp.ClientSession, error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.cs != nil {
		return ps.cs, nil
	}
	endpoint := c.base.JoinPath(ps.key.server)
	hc := &http.Client{
		Transport: &authTransport{base: c.transport, scheme: endpoint.Scheme, host: endpoint.Host, auth: ps.auth, now: c.now},
		Timeout:   c.timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	transport := &mcp.StreamableClientTransport{
		Endpoint:   endpoint.String(),
		HTTPClient: hc,
		// No reconnect loops inside the SDK: retrying is the monitor's job,
		// with backoff and respect for Retry-After.
		MaxRetries: -1,
		// Clarion only makes requests; a standing GET stream per session
		// would hold a connection per tenant for nothing.
		DisableStandaloneSSE: true,
	}
	cs, err := c.mcp.Connect(ctx, transport, &mcp.ClientSessionOptions{ProtocolVersion: protocolVersion})
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed { // Close ran meanwhile and did not see this session
		_ = cs.Close()
		return nil, errClosed
	}
	ps.cs = cs
	c.log.Debug("sentinel: MCP session initialized", "mcp_server", ps.key.server, "tenant_id", ps.key.tenant)
	return cs, nil
}

// drop forgets cs if it is still the pooled session, and closes it in the
// background: closing waits for the session's other calls and sends a
// best-effort DELETE, which must not hold up the caller. Client.Close waits
// for these.
func (c *Client) drop(ps *pooledSession, cs *mcp.ClientSession) {
	ps.mu.Lock()
	if ps.cs == cs {
		ps.cs = nil
	}
	ps.mu.Unlock()
	c.mu.Lock()
	closed := c.closed
	if !closed {
		c.closing.Add(1)
	}
	c.mu.Unlock()
	if closed {
		_ = cs.Close()
		return
	}
	go func() {
		defer c.closing.Done()
		_ = cs.Close()
	}()
}
