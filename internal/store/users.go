package store

// UserStore holds local Clarion accounts and browser sessions (the web UI).
type UserStore interface {
}
