// Package replicas holds the test of Clarion scaled out: several `clarion
// serve` processes on one PostgreSQL database sharing hundreds of monitors
// over several tenants, one killed with SIGKILL and one stopped with
// SIGTERM mid-run, with every incident an alert exactly once, every monitor
// polled by one replica per interval and taken over within two intervals,
// and the upstream economy (query_lake calls per monitor per interval,
// token refreshes per connection) measured and printed (issue 6).
//
// It has no code outside its test: the coordination it checks lives in
// the store (poll and refresh leases), the monitor engine (lease renewal)
// and the connection service (one refresh per connection at a time).
//
// The test needs CLARION_TEST_DATABASE_URL (a PostgreSQL server; each run
// uses a schema of its own); without it the test says it was skipped, and
// under CI=true it fails. -short skips it.
package replicas
