// Package e2e holds Clarion's end-to-end tests: the real parts (store on a
// SQLite file, Entra connection, Sentinel MCP client, monitor engine, HTTP
// API) against the Microsoft emulator over real HTTP. The reported-fault
// cases of ../shared/cases are here, each named by its id (go test
// ./internal/e2e -run Cases -v).
package e2e
