package sentinel

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clarion/sentinel/internal/emulator"
)

// signingKey is shared by the tests' emulators: an RSA key per test is slow.
var signingKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// emulatorNow is the emulator's fixed clock in these tests.
var emulatorNow = time.Date(2024, 6, 21, 9, 0, 0, 0, time.UTC)

type fixture struct {
	e      *emulator.Emulator
	srv    *httptest.Server
	client *Client
	tok    Token // Contoso admin, Sentinel platform (data lake)
}

// setup starts the Microsoft emulator on a loopback server and a Client
// pointed at it, with a data-lake token for Contoso.
func setup(t *testing.T) *fixture {
	t.Helper()
	cfg := emulator.DefaultConfig()
	cfg.SigningKey = signingKey()
	cfg.Now = func() time.Time { return emulatorNow }
	e, err := emulator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(func() { _ = e.Close() })
	c := New(Config{BaseURL: srv.URL + "/mcp", HTTP: srv.Client()})
	t.Cleanup(func() { _ = c.Close() })
	f := &fixture{e: e, srv: srv, client: c}
	f.tok = f.token(t, emulator.ContosoTenantID, emulator.SentinelPlatformResource)
	return f
}

func (f *fixture) token(t *testing.T, tenantID, resource string) Token {
	t.Helper()
	v, err := f.e.AccessToken(f.srv.URL, tenantID, "", resource)
	if err != nil {
		t.Fatal(err)
	}
	return Token{Value: v, TenantID: tenantID}
}

func (f *fixture) toolCalls(tool string) int {
	return f.e.Stats().Tenant(emulator.ContosoTenantID).Tools[tool].Count
}

func (f *fixture) requests() int {
	return f.e.Stats().Tenant(emulator.ContosoTenantID).Endpoints[emulator.EndpointDataExploration].Count
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestClientListWorkspaces(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := ctxTimeout(t, 10*time.Second)
	got, err := f.client.ListWorkspaces(ctx, f.tok)
	if err != nil {
		t.Fatal(err)
	}
	want := []Workspace{{ID: emulator.ContosoWorkspaceID, Name: emulator.ContosoWorkspaceName}, {ID: emulator.ContosoWorkspace2ID, Name: emulator.ContosoWorkspace2Name}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("workspaces %+v, want %+v", got, want)
	}

	// A tenant not onboarded to the data lake.
	if err := f.e.SetDataLakeOnboarded(emulator.ContosoTenantID, false); err != nil {
		t.Fatal(err)
	}
	_, err = f.client.ListWorkspaces(ctx, f.tok)
	if !errors.Is(err, ErrNotOnboarded) {
		t.Fatalf("error %v, want ErrNotOnboarded", err)
	}
	if Transient(err) || Unauthorized(err) {
		t.Fatalf("not onboarded classified as transient or unauthorized: %v", err)
	}
	_, err = f.client.QueryLake(ctx, f.tok, emulator.ContosoWorkspaceID, "SecurityIncident | take 1")
	if !errors.Is(err, ErrNotOnboarded) {
		t.Fatalf("query_lake error %v, want ErrNotOnboarded", err)
	}
}

// P05 over the wire: three incidents in one 100 ns tick, pages of two. The
// cursor goes back to the emulator's KQL exactly, and each incident comes
// back exactly once.
func TestClientPollKeysetPagingP05(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := ctxTimeout(t, 10*time.Second)
	const created = "2024-06-21T08:00:00.1234567Z"
	names := []string{
		"0b0c2f6e-0000-4000-8000-00000000000c",
		"0b0c2f6e-0000-4000-8000-00000000000a",
		`0b0c2f6e-0000-4000-8000-00000000000b'q\`, // quotes and backslashes survive the escaping
	}
	for i, n := range names {
		f.e.AddIncident(emulator.ContosoTenantID, emulator.ContosoWorkspaceID, emulator.Row{
			"IncidentName": n, "Title": "Incident " + n, "Severity": []string{"High", "Informational", "Medium"}[i], "Status": "New", "CreatedTime": created,
		}, time.Time{})
	}
	// Older than the sweep start: never read.
	f.e.AddIncident(emulator.ContosoTenantID, emulator.ContosoWorkspaceID, emulator.Row{
		"IncidentName": "0b0c2f6e-0000-4000-8000-000000000000", "Title": "old", "CreatedTime": "2024-06-21T07:00:00Z",
	}, time.Time{})

	start, _ := ParseTime("2024-06-21T07:59:00Z")
	p := PollParams{Start: start, PageSize: 2}
	var seen []string
	for page := 0; page < 4; page++ {
		incs, err := f.client.PollIncidents(ctx, f.tok, emulator.ContosoWorkspaceID, p)
		if err != nil {
			t.Fatalf("page %d: %v", page, err)
		}
		for _, inc := range incs {
			seen = append(seen, inc.Name)
			if inc.CreatedTime.Format(time.RFC3339Nano) != "2024-06-21T08:00:00.1234567Z" {
				t.Errorf("%s created %s", inc.Name, inc.CreatedTime.Format(time.RFC3339Nano))
			}
			if inc.TenantID != emulator.ContosoTenantID || inc.Number == 0 || inc.Title != "Incident "+inc.Name {
				t.Errorf("incident %+v", inc)
			}
			// The emulator's IncidentUrl ends with the name: with a
			// backslash it is refused and the Defender link is built.
			wantLink := "https://portal.azure.com/"
			if strings.Contains(inc.Name, `\`) {
				wantLink = "https://security.microsoft.com/incidents/"
			}
			if link := DeepLink(inc, nil); !strings.HasPrefix(link, wantLink) {
				t.Errorf("deep link %q, want %s…", link, wantLink)
			}
			var payload map[string]any
			if err := json.Unmarshal(inc.Payload, &payload); err != nil || payload["IncidentName"] != inc.Name {
				t.Errorf("payload %s", inc.Payload)
			}
		}
		if len(incs) < p.PageSize {
			break
		}
		last := incs[len(incs)-1]
		p.AfterTime, p.AfterName = last.CreatedTime, last.Name
	}
	want := []string{names[1], names[2], names[0]} // a, b'q\, c
	if !reflect.DeepEqual(seen, want) {
		t.Fatalf("incidents read %q, want each once in key order %q", seen, want)
	}
}

// P06 over the wire: three rows of one incident give one incident, the
// latest row.
func TestClientPollLatestRow(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := ctxTimeout(t, 10*time.Second)
	const name = "42424242-0000-4000-8000-000000000042"
	f.e.AddIncident(emulator.ContosoTenantID, emulator.ContosoWorkspaceID, emulator.Row{
		"IncidentName": name, "Title": "G-42", "Status": "New", "CreatedTime": "2024-06-21T08:30:00Z", "LastModifiedTime": "2024-06-21T08:30:00Z",
	}, time.Time{})
	for i, st := range []string{"Active", "Closed"} {
		if _, err := f.e.UpdateIncident(emulator.ContosoTenantID, emulator.ContosoWorkspaceID, name, emulator.Row{
			"Status": st, "LastModifiedTime": []string{"2024-06-21T08:31:00Z", "2024-06-21T08:32:00Z"}[i],
		}, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	incs, err := f.client.PollIncidents(ctx, f.tok, emulator.ContosoWorkspaceID, PollParams{Start: emulatorNow.Add(-time.Hour), PageSize: 50})
	if err != nil {
		t.Fatal(err)
	}
	if len(incs) != 1 || incs[0].Status != "Closed" || !incs[0].LastModifiedTime.Equal(time.Date(2024, 6, 21, 8, 32, 0, 0, time.UTC)) {
		t.Fatalf("incidents %+v, want one, Closed at 08:32", incs)
	}
}

func TestClientUpstreamFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		fault        emulator.Fault
		status       int
		throttled    bool
		retryAfter   time.Duration
		transient    bool
		invalidReply bool
	}{
		{name: "P10 429 with Retry-After", fault: emulator.Fault{Kind: emulator.FaultThrottle, RetryAfter: 30 * time.Second}, status: 429, throttled: true, retryAfter: 30 * time.Second, transient: true},
		{name: "503", fault: emulator.Fault{Kind: emulator.FaultServerError, Status: 503}, status: 503, transient: true},
		{name: "500", fault: emulator.Fault{Kind: emulator.FaultServerError, Status: 500}, status: 500, transient: true},
		{name: "502", fault: emulator.Fault{Kind: emulator.FaultServerError, Status: 502}, status: 502, transient: true},
		{name: "truncated body", fault: emulator.Fault{Kind: emulator.FaultTruncate}, transient: true, invalidReply: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			ctx := ctxTimeout(t, 10*time.Second)
			// A first call opens the session, so the fault hits a
			// session in use.
			if _, err := f.client.QueryLake(ctx, f.tok, emulator.ContosoWorkspaceID, "SecurityIncident | take 1"); err != nil {
				t.Fatal(err)
			}
			fault := tt.fault
			fault.TenantID, fault.Target, fault.Count = emulator.ContosoTenantID, emulator.ToolQueryLake, 1
			f.e.SetFault(fault)
			before := f.toolCalls(emulator.ToolQueryLake)

			_, err := f.client.QueryLake(ctx, f.tok, emulator.ContosoWorkspaceID, "SecurityIncident | take 1")
			if err == nil {
				t.Fatal("want an error")
			}
			if n := f.toolCalls(emulator.ToolQueryLake) - before; n != 1 {
				t.Fatalf("%d query_lake requests, want exactly 1 (no retry inside the client)", n)
			}
			ra, throttled := Throttled(err)
			if throttled != tt.throttled || ra != tt.retryAfter {
				t.Errorf("Throttled = %v, %v; want %v, %v", ra, throttled, tt.retryAfter, tt.throttled)
			}
			if Transient(err) != tt.transient || Unauthorized(err) {
				t.Errorf("Transient = %v, Unauthorized = %v for %v", Transient(err), Unauthorized(err), err)
			}
			var ue *UpstreamError
			if tt.status != 0 && (!errors.As(err, &ue) || ue.Status != tt.status || ue.Code == "") {
				t.Errorf("error %#v, want an UpstreamError with status %d and a code", err, tt.status)
			}
			if errors.Is(err, ErrInvalidResponse) != tt.invalidReply {
				t.Errorf("errors.Is(ErrInvalidResponse) = %v for %v", !tt.invalidReply, err)
			}
			if strings.Contains(err.Error(), f.tok.Value) {
				t.Fatal("the error text carries the token")
			}

			// The fault was one-off: the next call works, on the same
			// session or a new one.
			tbl, err := f.client.QueryLake(ctx, f.tok, emulator.ContosoWorkspaceID, "SecurityIncident | take 1")
			if err != nil || tbl == nil {
				t.Fatalf("call after the fault: %v", err)
			}
		})
	}
}

func TestClientUnauthorized(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := ctxTimeout(t, 10*time.Second)
	triage := f.token(t, emulator.ContosoTenantID, emulator.DefenderMCPResource)
	fabrikam := f.token(t, emulator.FabrikamTenantID, emulator.SentinelPlatformResource)
	tests := []struct {
		name string
		tok  Token
	}{
		{"garbage token", Token{Value: "not-a-token", TenantID: emulator.ContosoTenantID}},
		{"token for another resource", triage},
		{"token pinned to another tenant", Token{Value: fabrikam.Value, TenantID: emulator.ContosoTenantID}},
		{"forged signature", Token{Value: f.tok.Value[:strings.LastIndex(f.tok.Value, ".")+1] + "c2lnbmF0dXJl", TenantID: emulator.ContosoTenantID}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.client.ListWorkspaces(ctx, tt.tok)
			if !Unauthorized(err) {
				t.Fatalf("error %v, want Unauthorized", err)
			}
			if Transient(err) {
				t.Fatal("401 must not be transient")
			}
			if _, ok := Throttled(err); ok {
				t.Fatal("401 must not be throttled")
			}
			if strings.Contains(err.Error(), tt.tok.Value) {
				t.Fatal("the error text carries the token")
			}
		})
	}
	// The good token still works afterwards.
	if _, err := f.client.ListWorkspaces(ctx, f.tok); err != nil {
		t.Fatal(err)
	}
}

func TestClientRefusesLongKQLWithoutRequest(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := ctxTimeout(t, 10*time.Second)
	kql := "SecurityIncident | where Title has '" + strings.Repeat("x", 770) + "' | take 1"
	if n := len([]rune(kql)); n <= MaxQueryChars {
		t.Fatalf("test query has only %d characters", n)
	}
	_, err := f.client.QueryLake(ctx, f.tok, emulator.ContosoWorkspaceID, kql)
	if !errors.Is(err, ErrQueryTooLong) {
		t.Fatalf("error %v, want ErrQueryTooLong", err)
	}
	if n := f.e.Stats().Total.Count; n != 0 {
		t.Fatalf("%d requests reached the emulator, want none", n)
	}
	// Exactly 800 characters is allowed.
	ok := "SecurityIncident | take 1 " + strings.Repeat(" ", MaxQueryChars-26)
	if _, err := f.client.QueryLake(ctx, f.tok, emulator.ContosoWorkspaceID, ok); err != nil {
		t.Fatalf("800-character query: %v", err)
	}
}

func TestClientToolErrors(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := ctxTimeout(t, 10*time.Second)
	_, err := f.client.QueryLake(ctx, f.tok, emulator.ContosoWorkspaceID, "NoSuchTable | take 1")
	var ue *UpstreamError
	if !errors.As(err, &ue) || ue.Status != 0 || ue.Message == "" {
		t.Fatalf("error %#v, want a tool error with a message", err)
	}
	if Transient(err) || Unauthorized(err) || errors.Is(err, ErrNotOnboarded) {
		t.Fatalf("a query error misclassified: %v", err)
	}
	// CallTool hands back the result too, for the agent tools.
	res, err := f.client.CallTool(ctx, f.tok, ServerDataExploration, "query_lake", map[string]any{"query": "NoSuchTable", "workspaceId": emulator.ContosoWorkspaceID})
	if err == nil || res == nil || !res.IsError || res.Text() == "" {
		t.Fatalf("CallTool = %+v, %v; want the error result and an error", res, err)
	}
	// An unknown tool is a protocol error.
	_, err = f.client.CallTool(ctx, f.tok, ServerDataExploration, "no_such_tool", nil)
	if !errors.As(err, &ue) || Transient(err) {
		t.Fatalf("unknown tool: %v", err)
	}
	// The session survives both.
	if _, err := f.client.ListWorkspaces(ctx, f.tok); err != nil {
		t.Fatal(err)
	}
}

func TestClientSearchTablesAndTriage(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := ctxTimeout(t, 10*time.Second)
	raw, err := f.client.SearchTables(ctx, f.tok, "incidents", "")
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(raw) || !strings.Contains(string(raw), "SecurityIncident") {
		t.Fatalf("search_tables answer %s", raw)
	}
	triage := f.token(t, emulator.ContosoTenantID, emulator.DefenderMCPResource)
	res, err := f.client.CallTool(ctx, triage, ServerTriage, "ListIncidents", map[string]any{"top": 5})
	// The triage server accepts the Defender token. (Until the emulator
	// registers its triage tools, the answer is an unknown-tool error.)
	var ue *UpstreamError
	switch {
	case err == nil:
		if res.IsError || !json.Valid(res.JSON()) {
			t.Fatalf("ListIncidents answer %+v", res)
		}
	case Unauthorized(err) || Transient(err) || !errors.As(err, &ue):
		t.Fatalf("ListIncidents: %v", err)
	}
	// The data-lake token is refused by the triage server (wrong audience).
	if _, err := f.client.CallTool(ctx, f.tok, ServerTriage, "ListIncidents", nil); !Unauthorized(err) {
		t.Fatalf("data-lake token on triage: %v, want Unauthorized", err)
	}
}

// The session is initialized once and reused across calls and token
// refreshes; when the server forgets it, the client opens a new one
// without the caller noticing.
func TestClientSessionReuse(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := ctxTimeout(t, 10*time.Second)
	for range 3 {
		if _, err := f.client.ListWorkspaces(ctx, f.tok); err != nil {
			t.Fatal(err)
		}
	}
	// initialize + initialized + 3 calls.
	if n := f.requests(); n != 5 {
		t.Fatalf("%d requests for 3 calls, want 5 (one session)", n)
	}
	// Another token of the same user (a refresh) keeps the session.
	refreshed := f.token(t, emulator.ContosoTenantID, emulator.SentinelPlatformResource)
	if _, err := f.client.ListWorkspaces(ctx, refreshed); err != nil {
		t.Fatal(err)
	}
	if n := f.requests(); n != 6 {
		t.Fatalf("%d requests, want 6", n)
	}
	// The server ends every session: the next call re-initializes.
	if err := f.e.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.ListWorkspaces(ctx, f.tok); err != nil {
		t.Fatalf("call after the session ended: %v", err)
	}
}

// Many monitors of one tenant share the session; another tenant has its own.
func TestClientConcurrentCalls(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := ctxTimeout(t, 20*time.Second)
	fabrikam := f.token(t, emulator.FabrikamTenantID, emulator.SentinelPlatformResource)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Go(func() {
			tok, ws := f.tok, emulator.ContosoWorkspaceID
			if i%4 == 0 {
				tok, ws = fabrikam, emulator.FabrikamWorkspaceID
			}
			_, err := f.client.QueryLake(ctx, tok, ws, "SecurityIncident | take 1")
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// One session for Contoso: initialize + initialized + 30 calls.
	if n := f.requests(); n != 32 {
		t.Fatalf("%d Contoso requests, want 32", n)
	}
}

// A closed client makes no more requests.
func TestClientClosed(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := ctxTimeout(t, 10*time.Second)
	if _, err := f.client.ListWorkspaces(ctx, f.tok); err != nil {
		t.Fatal(err)
	}
	if err := f.client.Close(); err != nil {
		t.Fatal(err)
	}
	before := f.e.Stats().Total.Count
	if _, err := f.client.ListWorkspaces(ctx, f.tok); err == nil {
		t.Fatal("want an error from a closed client")
	}
	if n := f.e.Stats().Total.Count - before; n != 0 {
		t.Fatalf("%d requests after Close", n)
	}
}

func TestClientTimeout(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.e.SetFault(emulator.Fault{Kind: emulator.FaultDelay, Delay: time.Hour, TenantID: emulator.ContosoTenantID, Target: emulator.ToolQueryLake, Count: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := f.client.QueryLake(ctx, f.tok, emulator.ContosoWorkspaceID, "SecurityIncident | take 1")
	if !errors.Is(err, context.DeadlineExceeded) || !Transient(err) {
		t.Fatalf("error %v, want a transient deadline error", err)
	}
}

// No token is sent to any host but the configured one.
func TestClientRefusesForeignHost(t *testing.T) {
	t.Parallel()
	var hits int
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		http.Redirect(w, r, "http://127.0.0.1:1/mcp/data-exploration", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(other.Close)
	c := New(Config{BaseURL: other.URL + "/mcp", HTTP: other.Client()})
	t.Cleanup(func() { _ = c.Close() })
	_, err := c.ListWorkspaces(ctxTimeout(t, 10*time.Second), Token{Value: "secret-token", TenantID: emulator.ContosoTenantID})
	if err == nil {
		t.Fatal("a redirect must not be followed")
	}
	if hits != 1 {
		t.Fatalf("%d requests, want 1", hits)
	}
	at := &authTransport{base: http.DefaultTransport, scheme: "https", host: "sentinel.microsoft.com", auth: &sessionAuth{}}
	req, _ := http.NewRequest(http.MethodPost, "https://evil.example/mcp/data-exploration", nil)
	if _, err := at.RoundTrip(withCallReq(req)); !errors.Is(err, errForeignHost) {
		t.Fatalf("RoundTrip to a foreign host: %v", err)
	}
}

func withCallReq(r *http.Request) *http.Request {
	return r.WithContext(withCall(r.Context(), &callInfo{token: "secret-token", tenant: "t"}))
}
