// Package config owns Clarion's one typed configuration: read from flags and
// CLARION_* environment variables (a flag wins over the variable), secrets
// also from *_FILE variables, validated with errors that name the field.
// Secrets are never printed: String() redacts them.
package config

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Microsoft's production endpoints (MICROSOFT.md §1, §3).
const (
	DefaultEntraAuthority = "https://login.microsoftonline.com"
	DefaultSentinelMCPURL = "https://sentinel.microsoft.com/mcp"
)

// DefaultPortalHosts are the hosts a deep link may point at (MICROSOFT.md §5).
var DefaultPortalHosts = []string{"security.microsoft.com", "portal.azure.com"}

// Config is everything `clarion serve` (and, filled in by itself, `clarion
// demo`) needs.
type Config struct {
	Addr      string // listen address
	PublicURL string // how browsers reach Clarion; the OAuth redirect URI is PublicURL + /integrations/sentinel/callback
	DataDir   string
	// DatabaseURL: a SQLite file path (default DataDir/clarion.db) or postgres://…
	DatabaseURL string
	Migrate     bool // apply pending migrations at start (serve refuses an outdated schema otherwise)

	EntraAuthority string
	SentinelMCPURL string
	ClientID       string
	ClientSecret   string // secret: never printed
	EncryptionKey  string // base64 of 32 bytes; secret; default: DataDir/encryption.key, generated once

	PollInterval time.Duration
	Lookback     time.Duration
	PageSize     int
	// ReplicaID names this process in monitor leases. It must stay the same
	// across restarts of one instance (a restarted process takes its own
	// leases back at once instead of waiting for them to expire) and differ
	// between replicas. Default: host name + listen address.
	ReplicaID   string
	PortalHosts []string

	LogLevel string
	LogJSON  bool
}

// Defaults returns the production defaults.
func Defaults() Config {
	return Config{
		Addr:           "127.0.0.1:8080",
		DataDir:        "data",
		EntraAuthority: DefaultEntraAuthority,
		SentinelMCPURL: DefaultSentinelMCPURL,
		PollInterval:   60 * time.Second,
		Lookback:       15 * time.Minute,
		// The data lake allows 45 queries a minute (MICROSOFT.md §3): each
		// page is a query, so a sweep over a busy look-back window, or a
		// backlog, should take as few as possible. 1,000 rows of ~2 KB are
		// far below the 500,000-row and 64 MB caps of one answer.
		PageSize:    1000,
		PortalHosts: append([]string(nil), DefaultPortalHosts...),
		LogLevel:    "info",
	}
}

// Register binds every field to a flag on fs; each flag's default comes from
// its CLARION_* variable (or *_FILE for secrets) when set, so flags win.
func (c *Config) Register(fs *flag.FlagSet, getenv func(string) string) error {
	var errs []error
	str := func(p *string, name, env, usage string) {
		if v := getenv(env); v != "" {
			*p = v
		}
		fs.StringVar(p, name, *p, usage+" ("+env+")")
	}
	secret := func(p *string, name, env, usage string) {
		if v := getenv(env); v != "" {
			*p = v
		} else if f := getenv(env + "_FILE"); f != "" {
			b, err := os.ReadFile(f)
			if err != nil {
				errs = append(errs, fmt.Errorf("config: %s_FILE: %w", env, err))
			}
			*p = strings.TrimSpace(string(b))
		}
		fs.Func(name, usage+" ("+env+" or "+env+"_FILE; never printed)", func(s string) error { *p = s; return nil })
	}
	dur := func(p *time.Duration, name, env, usage string) {
		if v := getenv(env); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("config: %s: not a duration (e.g. 60s): %q", env, v))
			}
			*p = d
		}
		fs.DurationVar(p, name, *p, usage+" ("+env+")")
	}
	str(&c.Addr, "addr", "CLARION_ADDR", "listen address")
	str(&c.PublicURL, "public-url", "CLARION_PUBLIC_URL", "URL browsers use to reach Clarion (default http://ADDR)")
	str(&c.DataDir, "data-dir", "CLARION_DATA_DIR", "data directory (SQLite file, generated encryption key)")
	str(&c.DatabaseURL, "database-url", "CLARION_DATABASE_URL", "SQLite file path or postgres:// URL (default DATA_DIR/clarion.db)")
	str(&c.EntraAuthority, "entra-authority", "CLARION_ENTRA_AUTHORITY", "Microsoft Entra authority")
	str(&c.SentinelMCPURL, "sentinel-mcp-url", "CLARION_SENTINEL_MCP_URL", "base URL of the Sentinel MCP servers")
	str(&c.ClientID, "client-id", "CLARION_CLIENT_ID", "client id of the Clarion Sentinel Entra app")
	secret(&c.ClientSecret, "client-secret", "CLARION_CLIENT_SECRET", "client secret of the Clarion Sentinel Entra app")
	secret(&c.EncryptionKey, "encryption-key", "CLARION_ENCRYPTION_KEY", "base64 AES-256 key for refresh tokens at rest (default: generated into DATA_DIR)")
	dur(&c.PollInterval, "poll-interval", "CLARION_POLL_INTERVAL", "how often each monitor polls")
	dur(&c.Lookback, "lookback", "CLARION_LOOKBACK", "how far behind its watermark a poll re-reads (ingestion delay)")
	str(&c.LogLevel, "log-level", "CLARION_LOG_LEVEL", "debug, info, warn or error")
	str(&c.ReplicaID, "replica-id", "CLARION_REPLICA_ID", "this replica's stable id in monitor leases (default host:addr)")
	if v := getenv("CLARION_PAGE_SIZE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("config: CLARION_PAGE_SIZE: not a whole number: %q", v))
		}
		c.PageSize = n
	}
	fs.IntVar(&c.PageSize, "page-size", c.PageSize, "incidents per poll query page, 1..1000 (CLARION_PAGE_SIZE)")
	if v := getenv("CLARION_MIGRATE"); v == "1" || v == "true" {
		c.Migrate = true
	}
	fs.BoolVar(&c.Migrate, "migrate", c.Migrate, "apply pending database migrations at start (CLARION_MIGRATE)")
	if v := getenv("CLARION_LOG_JSON"); v == "1" || v == "true" {
		c.LogJSON = true
	}
	fs.BoolVar(&c.LogJSON, "log-json", c.LogJSON, "log as JSON (CLARION_LOG_JSON)")
	if v := getenv("CLARION_PORTAL_HOSTS"); v != "" {
		c.PortalHosts = splitList(v)
	}
	fs.Func("portal-hosts", "comma-separated hosts deep links may point at (CLARION_PORTAL_HOSTS)", func(s string) error {
		c.PortalHosts = splitList(s)
		return nil
	})
	return errors.Join(errs...)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Finish fills derived defaults and validates; errors name the field.
func (c *Config) Finish() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("config: addr: %q is not host:port", c.Addr))
	}
	if c.PublicURL == "" {
		c.PublicURL = "http://" + c.Addr
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	for name, v := range map[string]string{"public-url": c.PublicURL, "entra-authority": c.EntraAuthority, "sentinel-mcp-url": c.SentinelMCPURL} {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("config: %s: %q is not an http(s) URL", name, v))
		}
	}
	c.EntraAuthority = strings.TrimRight(c.EntraAuthority, "/")
	c.SentinelMCPURL = strings.TrimRight(c.SentinelMCPURL, "/")
	if c.DataDir == "" {
		errs = append(errs, errors.New("config: data-dir: must not be empty"))
	}
	if c.DatabaseURL == "" {
		c.DatabaseURL = filepath.Join(c.DataDir, "clarion.db")
	}
	if c.ClientID == "" {
		errs = append(errs, errors.New("config: client-id: required (the Clarion Sentinel Entra app's client id)"))
	}
	if c.ClientSecret == "" {
		errs = append(errs, errors.New("config: client-secret: required (CLARION_CLIENT_SECRET or CLARION_CLIENT_SECRET_FILE)"))
	}
	if c.PollInterval < time.Second {
		errs = append(errs, fmt.Errorf("config: poll-interval: %s is below 1s", c.PollInterval))
	}
	if c.Lookback < 0 {
		errs = append(errs, fmt.Errorf("config: lookback: %s is negative", c.Lookback))
	}
	if c.PageSize < 1 || c.PageSize > 1000 {
		errs = append(errs, fmt.Errorf("config: page-size: %d is outside 1..1000", c.PageSize))
	}
	if c.ReplicaID == "" {
		host, _ := os.Hostname()
		c.ReplicaID = host + ":" + c.Addr
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("config: log-level: %q is not debug, info, warn or error", c.LogLevel))
	}
	return errors.Join(errs...)
}

// String prints the configuration with secrets redacted.
func (c Config) String() string {
	red := func(s string) string {
		if s == "" {
			return ""
		}
		return "[redacted]"
	}
	return fmt.Sprintf("addr=%s public_url=%s data_dir=%s database=%s entra_authority=%s sentinel_mcp_url=%s client_id=%s client_secret=%s encryption_key=%s poll_interval=%s lookback=%s",
		c.Addr, c.PublicURL, c.DataDir, redactDSN(c.DatabaseURL), c.EntraAuthority, c.SentinelMCPURL, c.ClientID, red(c.ClientSecret), red(c.EncryptionKey), c.PollInterval, c.Lookback)
}

// redactDSN hides a password in a postgres:// URL.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return dsn
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "redacted")
	}
	return u.String()
}
