package emulator

import (
	"slices"
	"strings"
)

// resourceInfo describes a resource application the emulator issues
// tokens for.
type resourceInfo struct {
	id    string
	name  string
	uris  []string          // other spellings of the resource (app id URIs)
	perms map[string]string // delegated permission → consent page text
	// needsServicePrincipal: the tenant must have provisioned the resource
	// (Tenant.DefenderMCPProvisioned), else AADSTS650052.
	needsServicePrincipal bool
}

var resources = []resourceInfo{
	{
		id:    SentinelPlatformResource,
		name:  "Sentinel Platform Services",
		uris:  []string{"api://" + SentinelPlatformResource},
		perms: map[string]string{SentinelPlatformPermission: "Sentinel Platform Delegated API Access"},
	},
	{
		id:                    DefenderMCPResource,
		name:                  "Microsoft Defender MCP",
		uris:                  []string{"api://" + DefenderMCPResource},
		perms:                 map[string]string{DefenderMCPPermission: "Read securitycenter information by MCP"},
		needsServicePrincipal: true,
	},
	{
		id:    GraphResource,
		name:  "Microsoft Graph",
		uris:  []string{"https://graph.microsoft.com"},
		perms: map[string]string{"User.Read": "Sign you in and read your profile"},
	},
}

func lookupResource(s string) *resourceInfo {
	s = strings.TrimSuffix(strings.ToLower(s), "/")
	for i := range resources {
		r := &resources[i]
		if r.id == s {
			return r
		}
		for _, u := range r.uris {
			if strings.EqualFold(u, s) {
				return r
			}
		}
	}
	return nil
}

// oidcScopes are the OpenID Connect scopes that name no resource.
var oidcScopes = map[string]bool{"openid": true, "profile": true, "email": true, "offline_access": true}

// scopeRequest is a parsed scope parameter.
type scopeRequest struct {
	raw       []string
	oidc      map[string]bool
	resources []string            // resource app ids, in order of first mention
	perms     map[string][]string // resource → requested permissions (".default" → all)
	unknown   []string            // scopes of resources the emulator does not know
}

// parseScopes splits a scope parameter. A scope is an OIDC scope,
// "<resource>/<permission>" (resource as app id GUID or app id URI) or a
// bare permission, which Entra reads as a Microsoft Graph permission.
func parseScopes(s string) scopeRequest {
	sr := scopeRequest{oidc: map[string]bool{}, perms: map[string][]string{}}
	for _, sc := range strings.Fields(s) {
		sr.raw = append(sr.raw, sc)
		if oidcScopes[strings.ToLower(sc)] {
			sr.oidc[strings.ToLower(sc)] = true
			continue
		}
		resName, perm := GraphResource, sc
		if i := strings.LastIndex(sc, "/"); i > 0 {
			resName, perm = sc[:i], sc[i+1:]
		}
		r := lookupResource(resName)
		if r == nil {
			sr.unknown = append(sr.unknown, sc)
			continue
		}
		if !slices.Contains(sr.resources, r.id) {
			sr.resources = append(sr.resources, r.id)
		}
		sr.perms[r.id] = append(sr.perms[r.id], perm)
	}
	return sr
}

// grantedPerms resolves the permissions requested for a resource:
// ".default" means every permission of the resource. ok is false when a
// permission does not exist on the resource.
func grantedPerms(resource string, requested []string) (perms []string, bad string, ok bool) {
	r := lookupResource(resource)
	if r == nil {
		return nil, resource, false
	}
	for _, p := range requested {
		if p == ".default" {
			for name := range r.perms {
				if !slices.Contains(perms, name) {
					perms = append(perms, name)
				}
			}
			continue
		}
		found := ""
		for name := range r.perms {
			if strings.EqualFold(name, p) {
				found = name
			}
		}
		if found == "" {
			return nil, p, false
		}
		if !slices.Contains(perms, found) {
			perms = append(perms, found)
		}
	}
	slices.Sort(perms)
	return perms, "", true
}

// scopeString is the scope field of a token answer: the granted
// permissions qualified by the resource as the client spelled it, then the
// OIDC scopes that were asked for.
func scopeString(resource string, perms []string, oidc map[string]bool) string {
	var parts []string
	prefix := resource
	if resource == GraphResource {
		prefix = "https://graph.microsoft.com"
	}
	for _, p := range perms {
		parts = append(parts, prefix+"/"+p)
	}
	for _, s := range []string{"openid", "profile", "email", "offline_access"} {
		if oidc[s] {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, " ")
}
