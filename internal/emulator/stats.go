package emulator

import (
	"maps"
	"net/http"
	"strings"
	"time"
)

// Counter counts calls and remembers when the first and the last came
// (by the emulator's clock, Config.Now).
type Counter struct {
	Count int       `json:"count"`
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
}

func (c *Counter) hit(now time.Time) {
	if c.Count == 0 {
		c.First = now
	}
	c.Count++
	c.Last = now
}

// TenantStats are the calls of one tenant.
type TenantStats struct {
	// Total counts every request attributed to the tenant.
	Total Counter `json:"total"`
	// Endpoints counts requests by Endpoint* name (consent, authorize,
	// token, keys, openid-configuration, mcp/data-exploration, mcp/triage).
	Endpoints map[string]Counter `json:"endpoints"`
	// Grants counts token requests by grant_type.
	Grants map[string]Counter `json:"grants"`
	// Resources counts access tokens issued, by resource app id.
	Resources map[string]Counter `json:"resources"`
	// Tools counts MCP tools/call requests by tool name, counted when the
	// request arrives (before faults), so "no call after T" holds for every
	// attempt.
	Tools map[string]Counter `json:"tools"`
	// Sessions counts refresh_token grants per sign-in (one Clarion
	// connection), keyed by the sid claim of that sign-in's id token.
	Sessions map[string]Counter `json:"sessions"`
	// Errors counts error answers by OAuth error code or HTTP status.
	Errors map[string]Counter `json:"errors"`
}

// Stats are the request counts of the emulator, per tenant. Requests that
// cannot be attributed to a configured tenant are counted under the tenant
// path segment they used ("organizations", "common", an unknown id) or
// under "" (MCP requests without a valid token).
type Stats struct {
	Total   Counter                `json:"total"`
	Tenants map[string]TenantStats `json:"tenants"`
}

// Tenant returns one tenant's stats (zero counters if it made no call).
func (s Stats) Tenant(id string) TenantStats {
	if t, ok := s.Tenants[strings.ToLower(id)]; ok {
		return t
	}
	return newTenantStats()
}

func newTenantStats() TenantStats {
	return TenantStats{
		Endpoints: map[string]Counter{},
		Grants:    map[string]Counter{},
		Resources: map[string]Counter{},
		Tools:     map[string]Counter{},
		Sessions:  map[string]Counter{},
		Errors:    map[string]Counter{},
	}
}

type statsState struct {
	total   Counter
	tenants map[string]*TenantStats
}

func (s *statsState) init() { s.tenants = map[string]*TenantStats{} }

func (s *statsState) tenant(id string) *TenantStats {
	id = strings.ToLower(id)
	t := s.tenants[id]
	if t == nil {
		ts := newTenantStats()
		t = &ts
		s.tenants[id] = t
	}
	return t
}

func hitMap(m map[string]Counter, key string, now time.Time) {
	c := m[key]
	c.hit(now)
	m[key] = c
}

// count records one request to an endpoint.
func (e *Emulator) count(tenantID, endpoint string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	e.stats.total.hit(now)
	t := e.stats.tenant(tenantID)
	t.Total.hit(now)
	hitMap(t.Endpoints, endpoint, now)
}

func (e *Emulator) countGrant(tenantID, grantType string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	hitMap(e.stats.tenant(tenantID).Grants, grantType, e.now())
}

func (e *Emulator) countResource(tenantID, resource string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	hitMap(e.stats.tenant(tenantID).Resources, resource, e.now())
}

func (e *Emulator) countTool(tenantID, tool string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	hitMap(e.stats.tenant(tenantID).Tools, tool, e.now())
}

func (e *Emulator) countSession(tenantID, sid string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	hitMap(e.stats.tenant(tenantID).Sessions, sid, e.now())
}

type tenantCtxKey struct{}

// countError records an error answer under the tenant of the request, as
// far as it is known (see tenantOfRequest).
func (e *Emulator) countError(r *http.Request, code string) {
	tenantID, _ := r.Context().Value(tenantCtxKey{}).(string)
	if tenantID == "" {
		tenantID = strings.ToLower(r.PathValue("tenant"))
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	hitMap(e.stats.tenant(tenantID).Errors, code, e.now())
}

// Stats returns a copy of the request counts.
func (e *Emulator) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := Stats{Total: e.stats.total, Tenants: map[string]TenantStats{}}
	for id, t := range e.stats.tenants {
		out.Tenants[id] = TenantStats{
			Total:     t.Total,
			Endpoints: maps.Clone(t.Endpoints),
			Grants:    maps.Clone(t.Grants),
			Resources: maps.Clone(t.Resources),
			Tools:     maps.Clone(t.Tools),
			Sessions:  maps.Clone(t.Sessions),
			Errors:    maps.Clone(t.Errors),
		}
	}
	return out
}

// ResetStats sets every counter back to zero.
func (e *Emulator) ResetStats() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stats = statsState{}
	e.stats.init()
}
