// Package store owns Clarion's persistent state: Clarion workspaces, the
// Sentinel connection of each, monitors (with their watermark, lease and
// health), alerts, API tokens and short-lived OAuth states.
//
// One Store interface, two engines behind it: SQLite (pure Go,
// modernc.org/sqlite, the default) and PostgreSQL (pgx). Both run the same
// embedded, numbered migrations and pass the same conformance suite
// (package storetest). SQL lives only in this package tree.
//
// Open picks the engine from the DSN ("postgres://…" or a SQLite path) and
// checks the schema; Migrate applies the embedded migrations
// (migrations/NNNN_what.sql, see migrate.go for how to add one). NewID makes
// the ids callers give to new rows.
//
// Storage conventions, the same on both engines: times are UTC unix
// nanoseconds (BIGINT, zero time = 0) so that Sentinel's 100 ns timestamps
// round-trip exactly, and times come back in UTC; string lists are JSON
// text (an empty list reads back as nil); an alert's payload is TEXT holding
// the JSON bytes unchanged; secrets arrive already encrypted (package
// secrets) and are stored as BLOB/BYTEA.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Errors returned by every Store implementation; test with errors.Is.
var (
	// ErrNotFound: the row does not exist (or belongs to another workspace).
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: a uniqueness rule was violated (duplicate monitor name, ...).
	ErrConflict = errors.New("store: conflict")
	// ErrLeaseLost: the caller no longer holds the monitor's poll lease, or
	// the monitor was deleted (disconnect): nothing was written.
	ErrLeaseLost = errors.New("store: lease lost")
	// ErrStale: an optimistic-concurrency check failed (the row changed since
	// it was read); nothing was written.
	ErrStale = errors.New("store: stale version")
	// ErrSchemaOutdated: the database schema is older than this binary; run
	// `clarion migrate`.
	ErrSchemaOutdated = errors.New("store: schema outdated, run `clarion migrate`")
	// ErrSchemaNewer: the database was migrated by a newer clarion than this
	// binary; it is refused rather than misread. Run the newer version.
	ErrSchemaNewer = errors.New("store: schema is newer than this binary, upgrade clarion")
)

// Workspace is a Clarion workspace (a tenant of Clarion, not of Microsoft).
type Workspace struct {
	ID        string
	Name      string
	CreatedAt time.Time
}

// APIToken is a per-workspace bearer token for agents and scripts. Only the
// SHA-256 hash of the token is stored.
type APIToken struct {
	ID          string
	WorkspaceID string
	Name        string
	Hash        []byte
	CreatedAt   time.Time
	LastUsedAt  time.Time
}

// OAuthState is one step of an in-progress connect flow, keyed by the random
// `state` parameter. It is single-use (TakeOAuthState deletes it) and expires.
type OAuthState struct {
	State       string
	WorkspaceID string
	Step        string // "consent" or "signin"
	TenantID    string // set once admin consent named a tenant
	Nonce       string
	VerifierEnc []byte // PKCE code verifier, encrypted by the caller
	ReturnTo    string
	CreatedAt   time.Time
	ExpiresAt   time.Time
}

// Connection states (PRODUCT.md "Connection").
const (
	StateConnected         = "connected"
	StateReconnectRequired = "reconnect_required"
	StateDegraded          = "degraded"
)

// Connection is the Sentinel connection of one Clarion workspace: the OAuth
// credential only. RefreshTokenEnc is ciphertext (package secrets); the store
// never sees a token in clear.
type Connection struct {
	WorkspaceID     string
	TenantID        string
	AccountOID      string
	AccountUsername string
	Scopes          []string
	RefreshTokenEnc []byte
	State           string // StateConnected, StateReconnectRequired, StateDegraded
	StateCode       string // stable machine code of the last state change, e.g. "refresh_token_expired"
	StateReason     string // a sentence a SOC engineer can act on
	ConnectedAt     time.Time
	UpdatedAt       time.Time
	// Version increases on every write of the credential (UpsertConnection,
	// RotateRefreshToken); RotateRefreshToken compares it so that a rotated
	// refresh token is never overwritten by an older one. SetConnectionState
	// does not change it, so that a state change racing a refresh never makes
	// the refresh's rotated token look stale (and get lost).
	Version int64
}

// Monitor source kinds.
const (
	SourceSIEM     = "siem"
	SourceDataLake = "datalake"
)

// Monitor health statuses.
const (
	HealthPending   = "pending"   // never polled yet
	HealthHealthy   = "healthy"   // last poll succeeded
	HealthThrottled = "throttled" // Microsoft answered 429; retrying after Retry-After
	HealthFailing   = "failing"   // last poll failed (transient or not)
	HealthPaused    = "paused"    // the connection needs attention (re-connect required)
)

// PollCounts are the counts of the last poll, so that "no incidents are
// arriving" can be answered from the page.
type PollCounts struct {
	Returned         int `json:"returned"`          // distinct incidents Microsoft returned
	AlreadyKnown     int `json:"already_known"`     // passed the filters but already an alert
	FilteredSeverity int `json:"filtered_severity"` // dropped by the severity filter
	FilteredSearch   int `json:"filtered_search"`   // dropped by the search filter
	Ingested         int `json:"ingested"`          // new alerts written
	Invalid          int `json:"invalid,omitempty"` // rows skipped: no IncidentName or CreatedTime
}

// Health is a monitor's sync health, written through Store.FinishPoll.
type Health struct {
	Status              string
	LastPollAt          time.Time
	LastSuccessAt       time.Time
	LastErrorCode       string
	LastError           string
	ConsecutiveFailures int
	Counts              PollCounts
}

// Monitor polls one Sentinel workspace for one Clarion workspace.
type Monitor struct {
	ID                    string
	WorkspaceID           string
	Name                  string
	SourceKind            string   // SourceSIEM or SourceDataLake
	SentinelWorkspaceID   string   // GUID
	SentinelWorkspaceName string   // optional, from the data-lake picker
	Severities            []string // subset of critical/high/medium/low; empty = no filter
	Search                string
	Enabled               bool
	CreatedAt             time.Time
	UpdatedAt             time.Time

	// Progress. Watermark: the latest incident CreatedTime ingested; a sweep
	// starts at max(CreatedAt, Watermark-lookback). CursorTime/CursorName: the
	// keyset position reached inside the current sweep (zero = start a new
	// sweep). All moved only by CommitPage, in the same transaction as the
	// alerts they cover.
	Watermark  time.Time
	CursorTime time.Time
	CursorName string

	// Schedule and lease (one poller per monitor across replicas).
	NextPollAt time.Time
	LeaseOwner string
	LeaseUntil time.Time

	Health Health
}

// Progress is what CommitPage records with a page of alerts.
type Progress struct {
	Watermark  time.Time
	CursorTime time.Time
	CursorName string
}

// Alert is a Clarion alert made from one Sentinel incident.
type Alert struct {
	ID                  string
	WorkspaceID         string
	MonitorID           string
	MonitorName         string
	IncidentID          string // Sentinel IncidentName (GUID): the dedup key with WorkspaceID
	IncidentNumber      int64
	Title               string
	Description         string
	Severity            string // Clarion severity: critical/high/medium/low
	SourceSeverity      string // as Microsoft sent it
	Status              string // incident status at ingestion
	DeepLink            string // https link to a Microsoft portal, or empty
	SentinelWorkspaceID string
	TenantID            string
	IncidentCreatedAt   time.Time
	IngestedAt          time.Time
	Payload             json.RawMessage // the incident exactly as Microsoft sent it
}

// AlertFilter selects alerts for ListAlerts. Results are newest first
// (IngestedAt desc, ID desc); Before* is the keyset cursor of the next page:
// pass the IngestedAt and ID of the last alert of the previous page. Limit
// defaults to DefaultAlertLimit and is capped at MaxAlertLimit.
type AlertFilter struct {
	MonitorID        string
	Severity         string
	BeforeIngestedAt time.Time
	BeforeID         string
	Limit            int
}

// ListAlerts page sizes.
const (
	DefaultAlertLimit = 50
	MaxAlertLimit     = 500
)

// Store is the narrow, use-case shaped persistence API. Every method takes
// ctx first. Workspace-scoped reads take the workspace id and return
// ErrNotFound for rows of another workspace.
type Store interface {
	// UserStore: local accounts and browser sessions (users.go).
	UserStore
	// SkillStore: skills, their toolsets, and the tool-call audit (skills.go).
	SkillStore
	// ReplicaStore: lease renewal and the connection refresh lease, for
	// several replicas on one database (replicas.go).
	ReplicaStore

	Close() error
	// Engine reports "sqlite" or "postgres".
	Engine() string

	CreateWorkspace(ctx context.Context, w Workspace) error
	GetWorkspace(ctx context.Context, id string) (Workspace, error)
	ListWorkspaces(ctx context.Context) ([]Workspace, error)

	// CreateAPIToken stores a token; ErrConflict on a duplicate id or hash,
	// ErrNotFound if the workspace does not exist.
	CreateAPIToken(ctx context.Context, t APIToken) error
	// LookupAPIToken finds a token by its hash.
	LookupAPIToken(ctx context.Context, hash []byte) (APIToken, error)

	PutOAuthState(ctx context.Context, s OAuthState) error
	// TakeOAuthState returns and deletes the state atomically; an expired
	// state (ExpiresAt <= now) is deleted and reported as ErrNotFound.
	TakeOAuthState(ctx context.Context, state string, now time.Time) (OAuthState, error)

	// UpsertConnection stores a (re)connection: it replaces the credential
	// and state of an existing connection and keeps the monitors. The store
	// sets Version (1, then +1); an empty State is StateConnected and a zero
	// UpdatedAt is ConnectedAt. ErrNotFound if the workspace does not exist.
	UpsertConnection(ctx context.Context, c Connection) error
	GetConnection(ctx context.Context, workspaceID string) (Connection, error)
	// SetConnectionState changes state, code, reason and UpdatedAt only (not
	// Version). ErrNotFound if the workspace has no connection.
	SetConnectionState(ctx context.Context, workspaceID, state, code, reason string, now time.Time) error
	// RotateRefreshToken replaces the encrypted refresh token if the row's
	// Version still equals version; else ErrStale.
	RotateRefreshToken(ctx context.Context, workspaceID string, version int64, enc []byte, now time.Time) error
	// DeleteConnection removes the connection and every monitor of the
	// workspace in one transaction and returns the removed monitor ids.
	// Alerts stay. A CommitPage or FinishPoll racing it either completes
	// before it or fails with ErrLeaseLost. ErrNotFound if the workspace has
	// no connection (nothing is removed then).
	DeleteConnection(ctx context.Context, workspaceID string) ([]string, error)

	// CreateMonitor stores a new monitor: its configuration, CreatedAt,
	// UpdatedAt and NextPollAt (zero = due at once). Progress and lease start
	// empty and health starts as m.Health.Status, or HealthPending if empty.
	// ErrConflict on a duplicate id or a duplicate name in the workspace;
	// ErrNotFound if the workspace does not exist.
	CreateMonitor(ctx context.Context, m Monitor) error
	GetMonitor(ctx context.Context, workspaceID, id string) (Monitor, error)
	ListMonitors(ctx context.Context, workspaceID string) ([]Monitor, error)
	// UpdateMonitor writes the configuration fields (name, source, severities,
	// search, enabled) and UpdatedAt only; progress, lease and health are
	// untouched. ErrNotFound if no such monitor in the workspace, ErrConflict
	// on a duplicate name.
	UpdateMonitor(ctx context.Context, m Monitor) error
	DeleteMonitor(ctx context.Context, workspaceID, id string) error
	// ListEnabledMonitors lists every enabled monitor of every workspace (the
	// engine's reconcile input).
	ListEnabledMonitors(ctx context.Context) ([]Monitor, error)

	// ClaimPoll takes the monitor's poll lease for owner until leaseUntil if
	// the monitor exists, is enabled, is due (NextPollAt <= now) and its lease
	// is free (expired, or already owner's). ok=false means someone else has
	// it, it is not due, disabled or gone; no error. On success the returned
	// monitor carries the new lease.
	ClaimPoll(ctx context.Context, monitorID, owner string, now, leaseUntil time.Time) (m Monitor, ok bool, err error)
	// ClaimFeed takes, in one statement, the poll lease of every monitor of
	// the feed — the Clarion workspace's enabled monitors of one Sentinel
	// workspace — that is due and free, on the same terms as ClaimPoll. It
	// returns the monitors it claimed (none: nothing due or all held
	// elsewhere), oldest first (CreatedAt, then ID).
	ClaimFeed(ctx context.Context, workspaceID, sentinelWorkspaceID, owner string, now, leaseUntil time.Time) ([]Monitor, error)
	// CommitPage, in one transaction: checks that owner still holds the lease
	// of an existing monitor (else ErrLeaseLost and nothing written), inserts
	// the alerts with ON CONFLICT (workspace, incident) DO NOTHING, and moves
	// the monitor's progress. Returns how many alerts were new.
	//
	// Each alert's WorkspaceID and MonitorID default to the monitor's (a
	// different non-empty value is an error). The watermark never moves
	// backwards (the stored value is max(old, p.Watermark)); the cursor is
	// written as given (zero clears it). Concurrent CommitPage calls that
	// carry the same incidents, from one or several monitors of a workspace,
	// insert exactly one alert per incident.
	CommitPage(ctx context.Context, monitorID, owner string, alerts []Alert, p Progress) (inserted int, err error)
	// FinishPoll writes health and the next due time and releases the lease
	// (only if owner holds it; else ErrLeaseLost).
	FinishPoll(ctx context.Context, monitorID, owner string, h Health, nextPollAt time.Time) error
	// ReleaseLeases hands back every lease held by owner (graceful shutdown):
	// its monitors' poll leases and its connections' refresh leases.
	ReleaseLeases(ctx context.Context, owner string) error
	// PollSoon makes every monitor of the workspace due at now (after a
	// reconnect, polling resumes at once instead of an interval later).
	PollSoon(ctx context.Context, workspaceID string, now time.Time) error

	ListAlerts(ctx context.Context, workspaceID string, f AlertFilter) ([]Alert, error)
	GetAlert(ctx context.Context, workspaceID, id string) (Alert, error)
	// KnownIncidents reports which of the given incident ids already have an
	// alert in the workspace (for the "already known" count). The map holds
	// the known ids only; it is never nil.
	KnownIncidents(ctx context.Context, workspaceID string, incidentIDs []string) (map[string]bool, error)
}
