package connection

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/clarion/sentinel/internal/entra"
	"github.com/clarion/sentinel/internal/store"
)

// Sentences of the degraded state, per resource without a service principal.
const (
	CodeSentinelPlatformNotEnabled = "sentinel_platform_not_enabled"
	msgDegradedPlatform            = "The Microsoft Sentinel platform service is not enabled in your tenant (AADSTS650052), so incident polling and the Data Lake tools are unavailable: onboard the tenant to the Microsoft Sentinel data lake."
	msgDegradedOther               = "A Microsoft service that Clarion needs is not enabled in your tenant (AADSTS650052): a tenant administrator must create its service principal."
	msgReconnectDefault            = "Re-connect required: the stored Microsoft credential is no longer usable. Click Connect with Microsoft and sign in again."
)

func serviceNotEnabled(resource string) (code, sentence string) {
	switch resource {
	case DefenderMCP:
		return CodeDefenderMCPNotEnabled, msgDegradedDefender
	case SentinelPlatform:
		return CodeSentinelPlatformNotEnabled, msgDegradedPlatform
	default:
		return CodeServiceNotEnabled, msgDegradedOther
	}
}

func refreshScopes(resource string) []string {
	return []string{Scope(resource), entra.ScopeOfflineAccess}
}

// AccessToken returns an access token for resource (SentinelPlatform,
// DefenderMCP) under the workspace's connection.
//
// Tokens are cached per (workspace, resource) until a minute before they
// expire. At most one refresh runs per connection at a time: concurrent
// callers for the same resource wait for the one in flight and share its
// result (including its error, so that a throttled Entra is asked once).
// A rotated refresh token is stored with optimistic concurrency.
//
// Errors: ErrNotConnected; ErrReconnectRequired (*StateError), at once and
// without calling Microsoft while the stored state is reconnect_required;
// ErrServiceNotEnabled (*StateError) for a resource without a service
// principal in the tenant; ErrTransient (*TransientError), state unchanged.
func (s *Service) AccessToken(ctx context.Context, workspaceID, resource string) (Token, error) {
	if resource == "" {
		return Token{}, errors.New("connection: access token: no resource")
	}
	// The stored connection is read on every call (one indexed row): a
	// state change, reconnect or disconnect made by another replica takes
	// effect here at once, cached token or not.
	conn, err := s.Get(ctx, workspaceID)
	if err != nil {
		if errors.Is(err, ErrNotConnected) {
			s.dropTokens(workspaceID)
		}
		return Token{}, err
	}
	return s.AccessTokenWith(ctx, conn, resource)
}

// AccessTokenWith is AccessToken for a caller that has just read the
// workspace's stored connection itself (the monitor engine reads it at the
// start of every poll): the same checks and cache, one read fewer.
func (s *Service) AccessTokenWith(ctx context.Context, conn store.Connection, resource string) (Token, error) {
	if resource == "" {
		return Token{}, errors.New("connection: access token: no resource")
	}
	workspaceID := conn.WorkspaceID
	if err := s.usable(conn, resource); err != nil {
		return Token{}, err
	}

	now := s.now()
	s.mu.Lock()
	w := s.cache(workspaceID)
	if t, ok := w.tokens[resource]; ok {
		if t.connectedAt.Equal(conn.ConnectedAt) && now.Before(t.ExpiresAt.Add(-tokenEarly)) {
			s.mu.Unlock()
			return t, nil
		}
		delete(w.tokens, resource)
	}
	c := w.calls[resource]
	if c == nil {
		c = &call{done: make(chan struct{})}
		w.calls[resource] = c
		// Detached from the caller: its waiters must not fail because the
		// first caller gave up; bounded by RefreshTimeout.
		go s.runRefresh(context.WithoutCancel(ctx), workspaceID, resource, w, c, w.gen)
	}
	s.mu.Unlock()

	select {
	case <-c.done:
		return c.tok, c.err
	case <-ctx.Done():
		return Token{}, fmt.Errorf("connection: access token: %w", ctx.Err())
	}
}

// usable refuses, without calling Microsoft, what the stored state says
// cannot work.
func (s *Service) usable(conn store.Connection, resource string) error {
	switch conn.State {
	case store.StateReconnectRequired:
		s.dropTokens(conn.WorkspaceID)
		reason := conn.StateReason
		if reason == "" {
			reason = msgReconnectDefault
		}
		return &StateError{Err: ErrReconnectRequired, Code: conn.StateCode, Sentence: reason}
	case store.StateDegraded:
		code, _ := serviceNotEnabled(resource)
		if conn.StateCode != code {
			return nil
		}
		s.mu.Lock()
		at, ok := s.cache(conn.WorkspaceID).notEnabled[resource]
		s.mu.Unlock()
		// Ask Microsoft again now and then: the admin may have run the
		// remedy, and the next success clears the degraded state.
		if ok && s.now().Sub(at) < s.cfg.ServiceRecheck {
			return &StateError{Err: ErrServiceNotEnabled, Code: conn.StateCode, Sentence: conn.StateReason}
		}
	}
	return nil
}

func (s *Service) dropTokens(workspaceID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w := s.ws[workspaceID]; w != nil {
		clear(w.tokens)
	}
}

// runRefresh performs one refresh for the waiters of c.
func (s *Service) runRefresh(ctx context.Context, workspaceID, resource string, w *wsCache, c *call, gen uint64) {
	defer func() {
		s.mu.Lock()
		if w.calls[resource] == c {
			delete(w.calls, resource)
		}
		if c.err == nil && w.gen == gen {
			w.tokens[resource] = c.tok
		}
		s.mu.Unlock()
		close(c.done)
	}()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RefreshTimeout)
	defer cancel()

	// One refresh per connection: the refresh token is shared by every
	// resource, and each refresh may rotate it.
	select {
	case w.sem <- struct{}{}:
	case <-ctx.Done():
		c.err = &TransientError{Code: "timeout", Sentence: "Another token refresh of this connection did not finish in time; retrying with backoff.",
			cause: ctx.Err()}
		return
	}
	defer func() { <-w.sem }()
	release, err := s.refreshLease(ctx, workspaceID)
	if err != nil {
		c.err = err
		return
	}
	defer release()
	c.tok, c.err = s.refresh(ctx, workspaceID, resource)
}

// Refresh lease timing: the lease outlives the longest refresh
// (RefreshTimeout) by refreshLeaseMargin, so that it only lapses when its
// holder died; a waiting replica asks again with a backoff up to
// refreshLeaseMaxWait.
const (
	refreshLeaseMargin   = 10 * time.Second
	refreshLeaseMinWait  = 20 * time.Millisecond
	refreshLeaseMaxWait  = 500 * time.Millisecond
	refreshLeaseReleaseT = 5 * time.Second
)

// refreshLease takes the connection's refresh lease in the store (a row
// lease: refresh_owner, refresh_until), waiting while another replica holds
// it, so that across replicas one refresh of a connection runs at a time.
// The waiter then reads the refresh token that the holder rotated and
// stored, instead of redeeming the same one in parallel and losing a
// compare-and-swap (RotateRefreshToken's version check stays the guarantee
// that a rotated token is never overwritten by an older one; the lease
// makes that path rare). A holder that dies leaves the lease to lapse after
// RefreshTimeout+refreshLeaseMargin; one that shuts down gracefully hands
// it back (store.ReleaseLeases).
func (s *Service) refreshLease(ctx context.Context, workspaceID string) (release func(), err error) {
	wait := refreshLeaseMinWait
	for waited := false; ; waited = true {
		now := s.now()
		ok, err := s.cfg.Store.ClaimRefresh(ctx, workspaceID, s.cfg.Owner, now, now.Add(s.cfg.RefreshTimeout+refreshLeaseMargin))
		switch {
		case errors.Is(err, store.ErrNotFound):
			s.dropTokens(workspaceID)
			return nil, fmt.Errorf("%w: %w", ErrNotConnected, err)
		case err != nil:
			return nil, fmt.Errorf("connection: claim refresh lease: %w", err)
		case ok:
			if waited {
				s.log.Debug("refresh lease free again", "workspace_id", workspaceID)
			}
			return func() {
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshLeaseReleaseT)
				defer cancel()
				if err := s.cfg.Store.ReleaseRefresh(rctx, workspaceID, s.cfg.Owner); err != nil {
					s.log.Warn("release refresh lease", "workspace_id", workspaceID, "err", err)
				}
			}, nil
		}
		if !waited {
			s.log.Debug("another replica is refreshing this connection; waiting", "workspace_id", workspaceID)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, &TransientError{Code: "timeout", Sentence: "Another Clarion replica's token refresh of this connection did not finish in time; retrying with backoff.",
				cause: ctx.Err()}
		case <-t.C:
		}
		wait = min(2*wait, refreshLeaseMaxWait)
	}
}

// refresh redeems the stored refresh token for resource, rotates it, and
// maps Entra's verdict onto the connection state.
func (s *Service) refresh(ctx context.Context, workspaceID, resource string) (Token, error) {
	log := s.log.With("workspace_id", workspaceID, "resource", resource)
	// Two attempts at most: the second only when the stored credential
	// changed under the first (another replica rotated it, or a reconnect).
	for attempt := 0; ; attempt++ {
		conn, err := s.Get(ctx, workspaceID)
		if err != nil {
			return Token{}, err
		}
		// Read again under the semaphore: the state may have changed
		// while this call waited.
		if err := s.usable(conn, resource); err != nil {
			return Token{}, err
		}
		log := log.With("tenant_id", conn.TenantID)
		rt, err := s.cfg.Box.Open(conn.RefreshTokenEnc, []byte(workspaceID))
		if err != nil {
			return Token{}, fmt.Errorf("connection: open refresh token: %w", err)
		}
		tr, err := s.cfg.Entra.Refresh(ctx, conn.TenantID, string(rt), refreshScopes(resource))
		if err != nil {
			x := entra.Explain(err)
			switch x.Class {
			case entra.GrantDead:
				if attempt == 0 && s.credentialChanged(ctx, conn) {
					continue
				}
				if err := s.cfg.Store.SetConnectionState(ctx, workspaceID, store.StateReconnectRequired, x.Code, x.Sentence, s.now()); err != nil {
					return Token{}, fmt.Errorf("connection: set state reconnect_required: %w", err)
				}
				s.dropTokens(workspaceID)
				log.Warn("sentinel connection needs re-connect", "code", x.Code, "err", err)
				return Token{}, &StateError{Err: ErrReconnectRequired, Code: x.Code, Sentence: x.Sentence, cause: err}
			case entra.ServiceNotEnabled:
				code, sentence := serviceNotEnabled(resource)
				s.mu.Lock()
				s.cache(workspaceID).notEnabled[resource] = s.now()
				s.mu.Unlock()
				if conn.State != store.StateDegraded || conn.StateCode != code {
					if err := s.cfg.Store.SetConnectionState(ctx, workspaceID, store.StateDegraded, code, sentence, s.now()); err != nil {
						return Token{}, fmt.Errorf("connection: set state degraded: %w", err)
					}
					log.Warn("sentinel connection degraded", "code", code, "err", err)
				}
				return Token{}, &StateError{Err: ErrServiceNotEnabled, Code: code, Sentence: sentence, cause: err}
			case entra.Transient:
				ra, _ := entra.RetryAfter(err)
				return Token{}, &TransientError{RetryAfter: ra, Code: x.Code, Sentence: x.Sentence, cause: err}
			default:
				return Token{}, fmt.Errorf("connection: refresh %s token: %w", resource, err)
			}
		}

		if tr.RefreshToken != "" && tr.RefreshToken != string(rt) {
			enc := s.cfg.Box.Seal([]byte(tr.RefreshToken), []byte(workspaceID))
			err := s.cfg.Store.RotateRefreshToken(ctx, workspaceID, conn.Version, enc, s.now())
			switch {
			case errors.Is(err, store.ErrStale) && attempt == 0:
				// Another replica rotated (or a reconnect replaced) the
				// credential since it was read: use the stored one.
				log.Info("refresh token rotated elsewhere; retrying with the stored one")
				continue
			case errors.Is(err, store.ErrStale):
				// Changed twice under us: the access token is still good;
				// the stored refresh token is newer than ours.
				log.Warn("rotated refresh token not stored: the connection changed meanwhile")
			case errors.Is(err, store.ErrNotFound):
				s.dropTokens(workspaceID)
				return Token{}, fmt.Errorf("%w: disconnected during refresh", ErrNotConnected)
			case err != nil:
				// Entra keeps the previous refresh token valid; the
				// access token is good. Report and carry on.
				log.Error("rotated refresh token not stored", "err", err)
			}
		}
		if code, _ := serviceNotEnabled(resource); conn.State == store.StateDegraded && conn.StateCode == code {
			if err := s.cfg.Store.SetConnectionState(ctx, workspaceID, store.StateConnected, "", "", s.now()); err != nil {
				log.Error("clear degraded state", "err", err)
			} else {
				log.Info("sentinel connection recovered", "code", code)
			}
			s.mu.Lock()
			delete(s.cache(workspaceID).notEnabled, resource)
			s.mu.Unlock()
		}
		return Token{Value: tr.AccessToken, TenantID: conn.TenantID, ExpiresAt: tr.ExpiresAt, connectedAt: conn.ConnectedAt}, nil
	}
}

// credentialChanged reports whether the stored credential was replaced
// since conn was read (rotation or reconnect bump Version): a dead answer
// for the old refresh token then says nothing about the new one.
func (s *Service) credentialChanged(ctx context.Context, conn store.Connection) bool {
	cur, err := s.cfg.Store.GetConnection(ctx, conn.WorkspaceID)
	return err == nil && cur.Version != conn.Version && cur.State != store.StateReconnectRequired
}
