package sentinel

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// P16: severities map case-insensitively; unknown or missing is medium.
func TestMapSeverityP16(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"High", "high"},
		{"Informational", "low"},
		{"informational", "low"},
		{"", "medium"},
		{"unknownFutureValue", "medium"},
		{"CRITICAL", "critical"},
		{"Medium", "medium"},
		{" low ", "low"},
	}
	for _, tt := range tests {
		if got := MapSeverity(tt.in); got != tt.want {
			t.Errorf("MapSeverity(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestDeepLink(t *testing.T) {
	t.Parallel()
	const (
		tid      = "d7ab1225-4649-4cb3-abd5-bc732bed3203"
		defender = "https://security.microsoft.com/incident2/9759/overview?tid=" + tid
		azure    = "https://portal.azure.com/#asset/Microsoft_Azure_Security_Insights/Incident/subscriptions/789ffe48/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/ws/providers/Microsoft.SecurityInsights/Incidents/edb492c8"
	)
	tests := []struct {
		name  string
		inc   Incident
		hosts []string
		want  string
	}{
		{"provider url first", Incident{ProviderIncidentURL: defender, IncidentURL: azure, ProviderIncidentID: "9759", TenantID: tid}, nil, defender},
		{"incident url next", Incident{IncidentURL: azure, ProviderIncidentID: "9759", TenantID: tid}, nil, azure},
		{"built from provider id", Incident{ProviderIncidentID: "9759", TenantID: tid}, nil, "https://security.microsoft.com/incidents/9759?tid=" + tid},
		{"built without tenant", Incident{ProviderIncidentID: "9759"}, nil, "https://security.microsoft.com/incidents/9759"},
		{"provider id escaped", Incident{ProviderIncidentID: "a/../b?c", TenantID: tid}, nil, "https://security.microsoft.com/incidents/a%2F..%2Fb%3Fc?tid=" + tid},
		{"nothing", Incident{}, nil, ""},
		{"http refused, falls back", Incident{ProviderIncidentURL: "http://security.microsoft.com/incident2/1", IncidentURL: azure}, nil, azure},
		{"javascript refused", Incident{ProviderIncidentURL: "javascript:alert(1)"}, nil, ""},
		{"foreign host refused", Incident{IncidentURL: "https://evil.example/incidents/1"}, nil, ""},
		{"look-alike host refused", Incident{IncidentURL: "https://security.microsoft.com.evil.example/x"}, nil, ""},
		{"user info refused", Incident{IncidentURL: "https://security.microsoft.com@evil.example/x"}, nil, ""},
		{"backslash refused", Incident{IncidentURL: `https://evil.example\@security.microsoft.com/x`}, nil, ""},
		{"odd port refused", Incident{IncidentURL: "https://security.microsoft.com:8443/x"}, nil, ""},
		{"control character refused", Incident{IncidentURL: "https://security.microsoft.com/x\ny"}, nil, ""},
		{"surrounding space trimmed", Incident{IncidentURL: " https://security.microsoft.com/x\n"}, nil, "https://security.microsoft.com/x"},
		{"space inside refused", Incident{IncidentURL: "https://security.microsoft.com/a b"}, nil, ""},
		{"relative refused", Incident{IncidentURL: "//security.microsoft.com/x"}, nil, ""},
		{"host case and trailing dot", Incident{IncidentURL: "HTTPS://Security.Microsoft.COM./x"}, nil, "HTTPS://Security.Microsoft.COM./x"},
		{"national cloud by default", Incident{ProviderIncidentURL: "https://security.microsoft.us/incident2/1/overview"}, nil, "https://security.microsoft.us/incident2/1/overview"},
		{"configured hosts only", Incident{IncidentURL: azure, ProviderIncidentID: "9759"}, []string{"security.microsoft.us"}, ""},
		{"empty host list allows nothing", Incident{ProviderIncidentURL: defender}, []string{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := DeepLink(tt.inc, tt.hosts); got != tt.want {
				t.Fatalf("DeepLink = %q, want %q", got, tt.want)
			}
		})
	}
}

// P17: a long title cut inside emoji and CJK text stays valid UTF-8.
func TestTruncateTextP17(t *testing.T) {
	t.Parallel()
	title := strings.Repeat("a", 996) + "🔥漢字" + "b" // 1,000 characters, 1,007 bytes
	if utf8.RuneCountInString(title) != 1000 {
		t.Fatal("test title is not 1,000 characters")
	}
	prefix := strings.Repeat("a", 996)
	tests := []struct {
		name string
		in   string
		max  int
		want string
	}{
		{"cut inside the emoji", title, 998, prefix},
		{"cut after the emoji", title, 1000, prefix + "🔥"},
		{"cut inside CJK", title, 1002, prefix + "🔥"},
		{"cut after CJK", title, 1003, prefix + "🔥漢"},
		{"fits", title, len(title), title},
		{"zero", title, 0, ""},
		{"negative", title, -1, ""},
		{"dangling zero-width joiner dropped", "👩\u200d💻", 7, "👩"},
		{"invalid input made valid", "ab\xffcd", 10, "ab\uFFFDcd"},
		{"empty", "", 5, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := TruncateText(tt.in, tt.max)
			if got != tt.want {
				t.Fatalf("TruncateText(.., %d) = %q, want %q", tt.max, got, tt.want)
			}
			if !utf8.ValidString(got) || (tt.max >= 0 && len(got) > tt.max) {
				t.Fatalf("result invalid or too long: %d bytes", len(got))
			}
		})
	}
	// Every cut point of a mixed string gives valid UTF-8 within the limit.
	mixed := "Ünïcödé 🔥🧑🏽‍💻 漢字かな 한국어"
	for n := 0; n <= len(mixed)+1; n++ {
		got := TruncateText(mixed, n)
		if !utf8.ValidString(got) || len(got) > n || !strings.HasPrefix(mixed, got) {
			t.Fatalf("cut at %d: %q", n, got)
		}
	}
}

// P17 and P18: search is a trimmed, case-insensitive substring match done
// in Clarion; quotes and query syntax are plain text.
func TestMatchSearchP17P18(t *testing.T) {
	t.Parallel()
	tests := []struct {
		search, title, description string
		want                       bool
	}{
		{"", "anything", "", true},
		{"   ", "anything", "", true},
		{"incident", "INCIDENT on host", "", true},
		{"  Incident  ", "INCIDENT on host", "", true},
		{"on host", "", "seen ON HOST x", true},
		{"missing", "INCIDENT on host", "nothing", false},
		{"O'Brien", "Login by O'Brien", "", true},
		{"O'Brien", "other", "", false},
		{"it's", "Login by O'Brien", "", false},
		{"it's", "other", "", false},
		{"x') or (1 eq 1", "Login by O'Brien", "", false},
		{"x') or (1 eq 1", "other", "", false},
		{`" or 1==1 //`, "Login by O'Brien", "", false},
		{`" or 1==1 //`, "other", "", false},
		{"ünï", "ÜNÏCODE", "", true},
	}
	for _, tt := range tests {
		if got := MatchSearch(tt.search, tt.title, tt.description); got != tt.want {
			t.Errorf("MatchSearch(%q, %q, %q) = %v, want %v", tt.search, tt.title, tt.description, got, tt.want)
		}
	}
}
