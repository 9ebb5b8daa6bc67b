package sentinel

import (
	"net/url"
	"strings"
	"unicode/utf8"
)

// MapSeverity maps a Microsoft severity to Clarion's (case-insensitive):
// critical, high, medium and low map to themselves, informational to low,
// and anything else, or nothing, to medium. Sentinel has no "critical" today;
// the row is kept for Defender values and the future.
func MapSeverity(s string) string {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "critical":
		return "critical"
	case "high":
		return "high"
	case "medium":
		return "medium"
	case "low", "informational":
		return "low"
	default:
		return "medium"
	}
}

// DefaultPortalHosts are the Microsoft portal hosts a deep link may point at:
// the Defender portal and the Azure portal, in the commercial cloud and in
// the US Government clouds (Defender for GCC High and DoD, Azure
// Government). GCC uses the commercial hosts.
var DefaultPortalHosts = []string{
	"security.microsoft.com", // Microsoft Defender portal (commercial, GCC)
	"portal.azure.com",       // Azure portal (commercial)
	"security.microsoft.us",  // Defender portal, GCC High
	"security.apps.mil",      // Defender portal, DoD
	"portal.azure.us",        // Azure Government portal
}

// DeepLink returns the link from an incident to the Microsoft portal: the
// Defender link Microsoft put in AdditionalData.providerIncidentUrl, else the
// row's IncidentUrl, else one built from ProviderIncidentId
// (https://security.microsoft.com/incidents/{id}?tid={tenant}). A candidate
// is only used when it is an https URL, without user info or an odd port, to
// a host in allowedHosts (DefaultPortalHosts when nil); otherwise the next is
// tried, and "" is returned when none qualifies.
func DeepLink(inc Incident, allowedHosts []string) string {
	if allowedHosts == nil {
		allowedHosts = DefaultPortalHosts
	}
	candidates := []string{inc.ProviderIncidentURL, inc.IncidentURL}
	if id := strings.TrimSpace(inc.ProviderIncidentID); id != "" {
		built := "https://security.microsoft.com/incidents/" + url.PathEscape(id)
		if tid := strings.TrimSpace(inc.TenantID); tid != "" {
			built += "?tid=" + url.QueryEscape(tid)
		}
		candidates = append(candidates, built)
	}
	for _, c := range candidates {
		if link, ok := portalLink(c, allowedHosts); ok {
			return link
		}
	}
	return ""
}

// portalLink validates one candidate link.
func portalLink(raw string, allowedHosts []string) (string, bool) {
	raw = strings.TrimSpace(raw)
	if raw == "" || len(raw) > 4096 || !utf8.ValidString(raw) {
		return "", false
	}
	for _, r := range raw {
		// Control characters, spaces and backslashes are never part of a
		// portal link; browsers read backslashes as slashes, which could
		// move the host.
		if r <= ' ' || r == 0x7f || r == '\\' {
			return "", false
		}
	}
	u, err := url.Parse(raw)
	if err != nil || !strings.EqualFold(u.Scheme, "https") || u.User != nil || u.Opaque != "" {
		return "", false
	}
	if p := u.Port(); p != "" && p != "443" {
		return "", false
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	for _, h := range allowedHosts {
		if host != "" && host == strings.ToLower(strings.TrimSpace(h)) {
			return raw, true
		}
	}
	return "", false
}

// TruncateText returns s cut to at most maxBytes bytes on a character (rune)
// boundary. The result is always valid UTF-8: invalid bytes in s become
// U+FFFD first, and a zero-width joiner left dangling at the cut is dropped.
func TruncateText(s string, maxBytes int) string {
	if maxBytes <= 0 {
		return ""
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) <= maxBytes {
		return s
	}
	cut := maxBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	s = s[:cut]
	for strings.HasSuffix(s, "\u200d") {
		s = strings.TrimSuffix(s, "\u200d")
	}
	return s
}

// MatchSearch reports whether search (surrounding spaces trimmed) occurs in
// title or description, without regard to case. An empty search matches
// everything. The search text is only ever compared here, in Clarion: it is
// never put into a query sent to Microsoft.
func MatchSearch(search, title, description string) bool {
	search = strings.TrimSpace(search)
	if search == "" {
		return true
	}
	needle := strings.ToLower(search)
	return strings.Contains(strings.ToLower(title), needle) ||
		strings.Contains(strings.ToLower(description), needle)
}
