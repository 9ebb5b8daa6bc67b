// Package connection owns the Sentinel connection of a Clarion workspace:
// the two-step connect flow (tenant-wide admin consent, then the admin's
// sign-in with PKCE), the encrypted refresh token, the access-token cache
// per resource with one refresh in flight per connection, refresh-token
// rotation, and the connection state (connected, reconnect_required,
// degraded) driven by Entra's answers.
//
// The protocol itself is package entra's; persistence is package store's;
// encryption is package secrets'. No token, code, secret or verifier is ever
// logged or put in an error here.
package connection

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/clarion/sentinel/internal/entra"
	"github.com/clarion/sentinel/internal/secrets"
	"github.com/clarion/sentinel/internal/store"
	"golang.org/x/oauth2"
)

// Microsoft resources (app ids) Clarion asks tokens for (MICROSOFT.md §2).
const (
	// SentinelPlatform is "Sentinel Platform Services": the data lake
	// (query_lake, list workspaces, search tables), used by incident polling
	// and the MS Sentinel Data Lake tools.
	SentinelPlatform = "4500ebfb-89b6-4b14-a480-7f749797bfcd"
	// DefenderMCP is "Microsoft Defender MCP": the MS Sentinel Triage tools.
	// The consent screen lists its MCP.Read.All permission.
	DefenderMCP = "7b7b3966-1961-47b5-b080-43ca5482e21c"
)

// DefenderMCPRemedy is the one command that creates the Defender MCP service
// principal in a tenant that lacks it (AADSTS650052).
const DefenderMCPRemedy = "az ad sp create --id " + DefenderMCP

// Scope is the static scope of a resource: "<app id>/.default", all the
// permissions the tenant consented to for that resource.
func Scope(resource string) string { return resource + "/.default" }

// Step names of the connect flow (store.OAuthState.Step).
const (
	stepConsent = "consent"
	stepSignIn  = "signin"
)

// Defaults.
const (
	DefaultStateTTL       = 10 * time.Minute
	DefaultRefreshTimeout = time.Minute
	DefaultServiceRecheck = 10 * time.Minute
	// tokenEarly: a cached access token is used until this long before it
	// expires, so that a token never expires in the middle of a call.
	tokenEarly = time.Minute
)

// Errors of AccessToken (and of the other methods where they apply); test
// with errors.Is.
var (
	// ErrNotConnected: the Clarion workspace has no Sentinel connection.
	ErrNotConnected = errors.New("connection: not connected")
	// ErrReconnectRequired: the stored refresh token is dead; a person must
	// connect again. Returned without calling Microsoft while the stored
	// state is reconnect_required. The error is a *StateError with the code
	// and sentence of the cause.
	ErrReconnectRequired = errors.New("connection: re-connect required")
	// ErrServiceNotEnabled: the tenant has no service principal for the
	// resource (AADSTS650052 / 500011); for the Defender MCP resource the
	// connection is degraded and the *StateError carries the remedy.
	ErrServiceNotEnabled = errors.New("connection: service not enabled in the tenant")
	// ErrTransient: Microsoft Entra was unavailable, slow or throttling;
	// retry with backoff. The state of the connection is unchanged. The
	// error is a *TransientError (RetryAfter set for a 429).
	ErrTransient = errors.New("connection: microsoft entra temporarily unavailable")
)

// StateError is ErrReconnectRequired or ErrServiceNotEnabled with the stable
// code and the sentence stored on the connection.
type StateError struct {
	Err      error // ErrReconnectRequired or ErrServiceNotEnabled
	Code     string
	Sentence string
	cause    error
}

// Error names the sentinel, the code and the Entra cause.
func (e *StateError) Error() string {
	s := e.Err.Error()
	if e.Code != "" {
		s += " (" + e.Code + ")"
	}
	if e.cause != nil {
		s += ": " + e.cause.Error()
	}
	return s
}

// Unwrap returns the sentinel and the Entra error that caused it.
func (e *StateError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.Err}
	}
	return []error{e.Err, e.cause}
}

// TransientError is ErrTransient with Entra's Retry-After (0 if none) and a
// stable code and sentence ("throttled", "entra_unavailable", "timeout",
// "network_error", "malformed_response").
type TransientError struct {
	RetryAfter time.Duration
	Code       string
	Sentence   string
	cause      error
}

// Error names the code and the Entra cause.
func (e *TransientError) Error() string {
	s := ErrTransient.Error() + " (" + e.Code + ")"
	if e.cause != nil {
		s += ": " + e.cause.Error()
	}
	return s
}

// Unwrap returns ErrTransient and the cause.
func (e *TransientError) Unwrap() []error {
	if e.cause == nil {
		return []error{ErrTransient}
	}
	return []error{ErrTransient, e.cause}
}

// RetryAfter is the Retry-After that Microsoft sent with a throttled token
// request, if err carries one.
func RetryAfter(err error) (time.Duration, bool) {
	var te *TransientError
	if errors.As(err, &te) && te.RetryAfter > 0 {
		return te.RetryAfter, true
	}
	return 0, false
}

// Explain gives the stable code and the sentence of an error of this
// package (for monitor health, tool answers, API errors). ok is false for
// errors that are not this package's.
func Explain(err error) (code, sentence string, ok bool) {
	var se *StateError
	var te *TransientError
	var ce *ConnectError
	switch {
	case errors.As(err, &ce):
		return ce.Code, ce.Message, true
	case errors.As(err, &se):
		return se.Code, se.Sentence, true
	case errors.As(err, &te):
		return te.Code, te.Sentence, true
	case errors.Is(err, ErrNotConnected):
		return "not_connected", "This Clarion workspace is not connected to Microsoft Sentinel: click Connect with Microsoft.", true
	}
	return "", "", false
}

// Token is an access token for one resource of one connection. String and
// LogValue never show Value.
type Token struct {
	Value     string
	TenantID  string
	ExpiresAt time.Time

	// connectedAt identifies the credential it came from: a reconnect
	// (here or on another replica) makes the cached token stale.
	connectedAt time.Time
}

// String describes the token without its value.
func (t Token) String() string {
	return fmt.Sprintf("connection.Token{tenant=%s expires_at=%s}", t.TenantID, t.ExpiresAt.Format(time.RFC3339))
}

// GoString is String, so that %#v does not print the token either.
func (t Token) GoString() string { return t.String() }

// LogValue keeps the token out of slog output.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(slog.String("tenant_id", t.TenantID), slog.Time("expires_at", t.ExpiresAt))
}

// Config holds the Service's dependencies. Store, Box and Entra are
// required.
type Config struct {
	Store  store.Store
	Box    *secrets.Box
	Entra  *entra.Client
	Now    func() time.Time
	Logger *slog.Logger
	// StateTTL is how long a connect step may take (DefaultStateTTL).
	StateTTL time.Duration
	// RefreshTimeout bounds one refresh, which runs detached from the
	// caller that started it so that its waiters are not failed by that
	// caller's cancellation (DefaultRefreshTimeout).
	RefreshTimeout time.Duration
	// ServiceRecheck is how long a "service not enabled" answer for a
	// resource is trusted before Microsoft is asked again: the admin may
	// have run the remedy (DefaultServiceRecheck).
	ServiceRecheck time.Duration
	// Owner is this replica's id, the owner of the connection refresh
	// leases it takes in the store (see refreshLease); default: a random
	// id. Replicas sharing a database must have distinct owners.
	Owner string
}

// Service is the Sentinel connection of every Clarion workspace served by
// this process. It is safe for concurrent use. State shared between
// replicas lives in the store; the access-token cache is per process.
type Service struct {
	cfg Config
	log *slog.Logger

	mu sync.Mutex
	ws map[string]*wsCache
}

// wsCache is the in-process state of one workspace's connection.
type wsCache struct {
	gen    uint64           // bumped by Invalidate: results of older refreshes are not cached
	tokens map[string]Token // resource → access token
	calls  map[string]*call // resource → refresh in flight
	// sem serialises refreshes of one connection in this process: they
	// share one refresh token, which each may rotate. Across replicas the
	// store's refresh lease does the same (refreshLease).
	sem chan struct{}
	// notEnabled: resource → when Microsoft last said 650052/500011.
	notEnabled map[string]time.Time
}

type call struct {
	done chan struct{}
	tok  Token
	err  error
}

// New builds the Service.
func New(cfg Config) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.StateTTL <= 0 {
		cfg.StateTTL = DefaultStateTTL
	}
	if cfg.RefreshTimeout <= 0 {
		cfg.RefreshTimeout = DefaultRefreshTimeout
	}
	if cfg.ServiceRecheck <= 0 {
		cfg.ServiceRecheck = DefaultServiceRecheck
	}
	if cfg.Owner == "" {
		cfg.Owner = store.NewID()
	}
	return &Service{cfg: cfg, log: cfg.Logger.With("component", "connection"), ws: make(map[string]*wsCache)}
}

func (s *Service) now() time.Time { return s.cfg.Now() }

// cache returns the workspace's cache entry; s.mu must be held.
func (s *Service) cache(workspaceID string) *wsCache {
	w := s.ws[workspaceID]
	if w == nil {
		w = &wsCache{
			tokens:     make(map[string]Token),
			calls:      make(map[string]*call),
			sem:        make(chan struct{}, 1),
			notEnabled: make(map[string]time.Time),
		}
		s.ws[workspaceID] = w
	}
	return w
}

// Invalidate drops the cached access tokens of the workspace; refreshes in
// flight finish for their waiters but their results are not cached.
func (s *Service) Invalidate(workspaceID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.cache(workspaceID)
	w.gen++
	clear(w.tokens)
	clear(w.calls)
	clear(w.notEnabled)
}

// Get returns the workspace's connection (ErrNotConnected if none).
func (s *Service) Get(ctx context.Context, workspaceID string) (store.Connection, error) {
	c, err := s.cfg.Store.GetConnection(ctx, workspaceID)
	if errors.Is(err, store.ErrNotFound) {
		return store.Connection{}, fmt.Errorf("%w: %w", ErrNotConnected, err)
	}
	if err != nil {
		return store.Connection{}, fmt.Errorf("connection: get: %w", err)
	}
	return c, nil
}

// Disconnect removes the connection and every Sentinel monitor of the
// workspace (one store transaction) and drops the cached tokens. Alerts stay.
// Without a connection the error is ErrNotConnected (and store.ErrNotFound).
func (s *Service) Disconnect(ctx context.Context, workspaceID string) (removedMonitorIDs []string, err error) {
	ids, err := s.cfg.Store.DeleteConnection(ctx, workspaceID)
	s.Invalidate(workspaceID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("connection: disconnect: %w: %w", ErrNotConnected, err)
	}
	if err != nil {
		return nil, fmt.Errorf("connection: disconnect: %w", err)
	}
	s.log.Info("sentinel disconnected", "workspace_id", workspaceID, "monitors_removed", len(ids))
	return ids, nil
}

// Status is the connection as the integration page shows it.
type Status struct {
	// State is store.StateConnected, StateReconnectRequired, StateDegraded,
	// or StateDisconnected.
	State string
	// Code is the stable code of the last state change ("" when connected).
	Code string
	// Sentence is what the page says about the connection.
	Sentence        string
	TenantID        string
	AccountUsername string
	AccountOID      string
	Scopes          []string
	ConnectedAt     time.Time
	UpdatedAt       time.Time
}

// StateDisconnected is Status.State when the workspace has no connection.
const StateDisconnected = "disconnected"

// Connected reports whether a connection exists (in any state).
func (st Status) Connected() bool { return st.State != StateDisconnected }

// Status returns the connection's view for the API and the UI; a workspace
// without a connection is StateDisconnected, not an error.
func (s *Service) Status(ctx context.Context, workspaceID string) (Status, error) {
	c, err := s.Get(ctx, workspaceID)
	if errors.Is(err, ErrNotConnected) {
		return Status{State: StateDisconnected, Code: "not_connected",
			Sentence: "Not connected. Click Connect with Microsoft to connect Microsoft Sentinel."}, nil
	}
	if err != nil {
		return Status{}, err
	}
	st := Status{State: c.State, Code: c.StateCode, Sentence: c.StateReason, TenantID: c.TenantID,
		AccountUsername: c.AccountUsername, AccountOID: c.AccountOID, Scopes: c.Scopes,
		ConnectedAt: c.ConnectedAt, UpdatedAt: c.UpdatedAt}
	if st.Sentence == "" {
		switch c.State {
		case store.StateReconnectRequired:
			st.Sentence = "Re-connect required: the stored Microsoft credential is no longer usable. Click Connect with Microsoft and sign in again."
		default:
			who := c.AccountUsername
			if who == "" {
				who = c.AccountOID
			}
			st.Sentence = "Connected to Microsoft Entra tenant " + c.TenantID + " as " + who + "."
		}
	}
	return st, nil
}

// ---- connect flow ----

// ConnectError is a connect attempt that Clarion refuses or Microsoft
// failed, with a stable Code and a Message for the person connecting.
// Nothing was stored.
type ConnectError struct {
	Code    string
	Message string
	cause   error
}

// Error names the code and the cause (for logs; show Message to people).
func (e *ConnectError) Error() string {
	s := "connection: connect: " + e.Code
	if e.cause != nil {
		s += ": " + e.cause.Error()
	}
	return s
}

// Unwrap returns the cause (an *entra.Error, for instance), if any.
func (e *ConnectError) Unwrap() error { return e.cause }

// Connect error codes besides entra's (consent_declined, consent_required,
// wrong_tenant, service_not_enabled).
const (
	CodeInvalidState         = "invalid_state"
	CodeConsentFailed        = "consent_failed"
	CodeSignInFailed         = "signin_failed"
	CodeNoRefreshToken       = "no_refresh_token"
	CodeWrongTenant          = "wrong_tenant"
	CodeTenantMismatch       = "tenant_mismatch"
	CodeServiceNotEnabled    = "service_not_enabled"
	CodeMicrosoftUnavailable = "microsoft_unavailable"
	// CodeDefenderMCPNotEnabled is the degraded state's code when the
	// Defender MCP resource has no service principal in the tenant.
	CodeDefenderMCPNotEnabled = "defender_mcp_not_enabled"
)

// Sentences shown to the person connecting (and in the product's
// troubleshooting text).
const (
	msgInvalidState = "This connect link has expired or was already used. Start again with Connect with Microsoft."
	msgNoRefresh    = "Microsoft did not return a refresh token. The Clarion Sentinel app needs the offline_access permission to poll on your behalf: ask your Entra admin to grant offline_access and try connecting again."
	msgWrongTenant  = "The sign-in used a different tenant than the one that granted consent. Connect again and sign in with the account that approved the consent."
	msgUnavailable  = "Microsoft Entra is temporarily unavailable or did not answer in time. Nothing was connected; try again in a minute."
	msgDefenderMCP  = "The Microsoft Defender MCP service is not enabled in your tenant (AADSTS650052): the tenant has no service principal for the resource behind the Sentinel triage tools. A tenant administrator can enable it once by running `" + DefenderMCPRemedy + "` in Azure Cloud Shell (shell.azure.com), then connect again."
	msgPlatform     = "The Microsoft Sentinel platform service is not enabled in your tenant (AADSTS650052): onboard the tenant to the Microsoft Sentinel data lake, then connect again."
	// degraded state sentence (refresh of the triage resource).
	msgDegradedDefender = "The Microsoft Defender MCP service is not enabled in your tenant (AADSTS650052), so the MS Sentinel Triage tools are unavailable; incident polling and the Data Lake tools keep working. A tenant administrator can enable it once by running `" + DefenderMCPRemedy + "` in Azure Cloud Shell (shell.azure.com)."
)

// consentScopes: admin consent for both resources at once (one consent
// screen per workspace), plus the sign-in scopes.
var consentScopes = []string{Scope(SentinelPlatform), Scope(DefenderMCP)}

// signInScopes: a token request names one resource; the data lake is the
// one polling needs first. openid/profile give the id token that confirms
// the tenant, offline_access the refresh token.
var signInScopes = []string{Scope(SentinelPlatform), entra.ScopeOpenID, entra.ScopeProfile, entra.ScopeOfflineAccess}

// CallbackResult says what to do after Callback. Next is set after the
// consent step: redirect the browser there (the sign-in). Connected is set
// when the connection was stored. WorkspaceID and ReturnTo are set whenever
// the state was valid, also with a *ConnectError.
type CallbackResult struct {
	WorkspaceID string
	ReturnTo    string
	Next        string
	Connected   bool
}

// BeginConnect starts connecting the workspace: it records a single-use,
// expiring state bound to the workspace and returns the admin-consent URL.
// returnTo is kept only if it is a local path ("/..."), else dropped.
func (s *Service) BeginConnect(ctx context.Context, workspaceID, returnTo string) (redirectURL string, err error) {
	if _, err := s.cfg.Store.GetWorkspace(ctx, workspaceID); err != nil {
		return "", fmt.Errorf("connection: begin connect: workspace: %w", err)
	}
	state, err := randomString(32)
	if err != nil {
		return "", fmt.Errorf("connection: begin connect: %w", err)
	}
	now := s.now()
	err = s.cfg.Store.PutOAuthState(ctx, store.OAuthState{
		State: state, WorkspaceID: workspaceID, Step: stepConsent,
		ReturnTo: localPath(returnTo), CreatedAt: now, ExpiresAt: now.Add(s.cfg.StateTTL),
	})
	if err != nil {
		return "", fmt.Errorf("connection: begin connect: %w", err)
	}
	return s.cfg.Entra.AdminConsentURL(state, consentScopes), nil
}

// Callback handles a redirect from Microsoft to the one redirect URI. The
// state parameter (single-use, expiring, bound to the workspace) says which
// step it answers. On any failure nothing is stored and the error is a
// *ConnectError (or, for Clarion-side failures, another error).
func (s *Service) Callback(ctx context.Context, q url.Values) (CallbackResult, error) {
	raw := q.Get("state")
	if raw == "" {
		return CallbackResult{}, &ConnectError{Code: CodeInvalidState, Message: msgInvalidState}
	}
	st, err := s.cfg.Store.TakeOAuthState(ctx, raw, s.now())
	if errors.Is(err, store.ErrNotFound) {
		return CallbackResult{}, &ConnectError{Code: CodeInvalidState, Message: msgInvalidState}
	}
	if err != nil {
		return CallbackResult{}, fmt.Errorf("connection: callback: %w", err)
	}
	res := CallbackResult{WorkspaceID: st.WorkspaceID, ReturnTo: st.ReturnTo}
	log := s.log.With("workspace_id", st.WorkspaceID, "step", st.Step)
	switch st.Step {
	case stepConsent:
		next, err := s.consentAnswer(ctx, st, q)
		if err != nil {
			logConnectFailure(log, err)
			return res, err
		}
		res.Next = next
		return res, nil
	case stepSignIn:
		if err := s.signInAnswer(ctx, st, q, log); err != nil {
			logConnectFailure(log, err)
			return res, err
		}
		res.Connected = true
		return res, nil
	default:
		return res, &ConnectError{Code: CodeInvalidState, Message: msgInvalidState,
			cause: fmt.Errorf("unknown step %q", st.Step)}
	}
}

// logConnectFailure records why a connect attempt was refused, with the
// Entra error chain (codes and ids, nothing secret). Other errors are the
// caller's to log, once, at the edge.
func logConnectFailure(log *slog.Logger, err error) {
	var ce *ConnectError
	if errors.As(err, &ce) {
		log.Info("sentinel connect refused", "code", ce.Code, "err", err)
	}
}

var guidRe = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// consentAnswer handles the admin-consent redirect and returns the sign-in
// URL at the consenting tenant.
func (s *Service) consentAnswer(ctx context.Context, st store.OAuthState, q url.Values) (string, error) {
	if e := entra.ErrorFromQuery(q); e != nil {
		return "", connectErrorFor(e, CodeConsentFailed, "Microsoft did not complete the admin consent")
	}
	// admin_consent=True&tenant=<tid>. The tenant is only a hint until
	// the signed id token's tid confirms it (MICROSOFT.md §1).
	tenant := strings.ToLower(q.Get("tenant"))
	if !strings.EqualFold(q.Get("admin_consent"), "true") || !guidRe.MatchString(tenant) {
		return "", &ConnectError{Code: CodeConsentFailed,
			Message: "Microsoft's answer to the admin consent did not name a tenant that granted consent. Start again with Connect with Microsoft.",
			cause:   errors.New("consent answer without admin_consent=True and a tenant id")}
	}
	state, err := randomString(32)
	if err != nil {
		return "", fmt.Errorf("connection: consent: %w", err)
	}
	nonce, err := randomString(32)
	if err != nil {
		return "", fmt.Errorf("connection: consent: %w", err)
	}
	verifier := oauth2.GenerateVerifier()
	// The verifier is sealed with the new state as associated data: it
	// opens only for the state row it was stored with.
	enc := s.cfg.Box.Seal([]byte(verifier), []byte(state))
	now := s.now()
	err = s.cfg.Store.PutOAuthState(ctx, store.OAuthState{
		State: state, WorkspaceID: st.WorkspaceID, Step: stepSignIn, TenantID: tenant, Nonce: nonce,
		VerifierEnc: enc, ReturnTo: st.ReturnTo, CreatedAt: now, ExpiresAt: now.Add(s.cfg.StateTTL),
	})
	if err != nil {
		return "", fmt.Errorf("connection: consent: %w", err)
	}
	return s.cfg.Entra.AuthorizeURL(tenant, state, nonce, oauth2.S256ChallengeFromVerifier(verifier), signInScopes), nil
}

// signInAnswer handles the sign-in redirect: redeem, verify, store.
func (s *Service) signInAnswer(ctx context.Context, st store.OAuthState, q url.Values, log *slog.Logger) error {
	if e := entra.ErrorFromQuery(q); e != nil {
		return connectErrorFor(e, CodeSignInFailed, "Microsoft did not complete the sign-in")
	}
	code := q.Get("code")
	if code == "" {
		return &ConnectError{Code: CodeSignInFailed,
			Message: "Microsoft's answer to the sign-in carried no authorization code. Start again with Connect with Microsoft.",
			cause:   errors.New("sign-in answer without code")}
	}
	verifier, err := s.cfg.Box.Open(st.VerifierEnc, []byte(st.State))
	if err != nil {
		return fmt.Errorf("connection: sign-in: open verifier: %w", err)
	}
	tr, err := s.cfg.Entra.Redeem(ctx, st.TenantID, code, string(verifier), signInScopes)
	if err != nil {
		return connectErrorFor(err, CodeSignInFailed, "Microsoft did not accept the sign-in")
	}
	if tr.RefreshToken == "" {
		return &ConnectError{Code: CodeNoRefreshToken, Message: msgNoRefresh,
			cause: errors.New("token answer without refresh_token")}
	}
	if tr.IDToken == "" {
		return &ConnectError{Code: CodeSignInFailed,
			Message: "Microsoft did not return an ID token for the sign-in, so the tenant cannot be confirmed. Start again with Connect with Microsoft.",
			cause:   errors.New("token answer without id_token")}
	}
	claims, err := s.cfg.Entra.VerifyIDToken(ctx, st.TenantID, tr.IDToken, st.Nonce)
	if err != nil {
		return connectErrorFor(err, CodeSignInFailed, "Clarion could not verify Microsoft's answer to the sign-in")
	}
	if claims.TenantID != st.TenantID {
		// VerifyIDToken already refuses this; kept as the rule's statement.
		return &ConnectError{Code: CodeWrongTenant, Message: msgWrongTenant}
	}

	existing, err := s.cfg.Store.GetConnection(ctx, st.WorkspaceID)
	switch {
	case err == nil:
		if existing.TenantID != claims.TenantID {
			mons, err := s.cfg.Store.ListMonitors(ctx, st.WorkspaceID)
			if err != nil {
				return fmt.Errorf("connection: sign-in: list monitors: %w", err)
			}
			if len(mons) > 0 {
				return &ConnectError{Code: CodeTenantMismatch,
					Message: fmt.Sprintf("This workspace's Sentinel monitors poll Microsoft Entra tenant %s, but the sign-in was for tenant %s. Disconnect Sentinel first (this removes its %d monitor(s)), then connect the other tenant.",
						existing.TenantID, claims.TenantID, len(mons))}
			}
		}
	case errors.Is(err, store.ErrNotFound):
	default:
		return fmt.Errorf("connection: sign-in: %w", err)
	}

	enc := s.cfg.Box.Seal([]byte(tr.RefreshToken), []byte(st.WorkspaceID))
	scopes := tr.Scopes()
	if len(scopes) == 0 {
		scopes = signInScopes
	}
	now := s.now()
	err = s.cfg.Store.UpsertConnection(ctx, store.Connection{
		WorkspaceID: st.WorkspaceID, TenantID: claims.TenantID, AccountOID: claims.ObjectID,
		AccountUsername: claims.PreferredUsername, Scopes: scopes, RefreshTokenEnc: enc,
		State: store.StateConnected, ConnectedAt: now, UpdatedAt: now,
	})
	if err != nil {
		return fmt.Errorf("connection: sign-in: store connection: %w", err)
	}
	s.Invalidate(st.WorkspaceID)
	log.Info("sentinel connected", "tenant_id", claims.TenantID, "account", claims.PreferredUsername,
		"reconnect", existing.WorkspaceID != "")
	return nil
}

// connectErrorFor turns an Entra failure during the connect flow into the
// person's message. fallbackCode/what cover the errors no class names.
func connectErrorFor(err error, fallbackCode, what string) *ConnectError {
	x := entra.Explain(err)
	switch x.Class {
	case entra.ServiceNotEnabled:
		msg := msgDefenderMCP
		var e *entra.Error
		if errors.As(err, &e) && strings.Contains(e.Description, SentinelPlatform) && !strings.Contains(e.Description, DefenderMCP) {
			msg = msgPlatform
		}
		return &ConnectError{Code: CodeServiceNotEnabled, Message: msg, cause: err}
	case entra.ConsentDeclined:
		return &ConnectError{Code: x.Code, Message: x.Sentence, cause: err}
	case entra.WrongTenant:
		return &ConnectError{Code: CodeWrongTenant, Message: msgWrongTenant, cause: err}
	case entra.Transient:
		return &ConnectError{Code: CodeMicrosoftUnavailable, Message: msgUnavailable, cause: err}
	}
	var e *entra.Error
	detail := ""
	if errors.As(err, &e) {
		detail = " (" + e.Code
		for _, n := range e.ErrorCodes {
			detail += fmt.Sprintf(", AADSTS%d", n)
		}
		detail += ")"
	}
	return &ConnectError{Code: fallbackCode,
		Message: what + detail + ". Nothing was connected; start again with Connect with Microsoft.",
		cause:   err}
}

// localPath keeps returnTo only if it is a path on this site.
func localPath(returnTo string) string {
	if returnTo == "" || returnTo[0] != '/' || strings.HasPrefix(returnTo, "//") || strings.ContainsAny(returnTo, "\\\r\n") {
		return ""
	}
	u, err := url.Parse(returnTo)
	if err != nil || u.Scheme != "" || u.Host != "" {
		return ""
	}
	return returnTo
}

func randomString(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
