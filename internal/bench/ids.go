package bench

import "fmt"

// The bench's Microsoft tenants, users and Sentinel workspaces have ids
// derived from their index, so that the driver and the emulator child agree
// on them without exchanging a list. Every id is a valid lower-case GUID.

func tenantID(i int) string { return fmt.Sprintf("be000000-0000-4000-8000-%012d", i) }

func adminOID(i int) string { return fmt.Sprintf("be100000-0000-4000-8000-%012d", i) }

func adminUsername(i int) string { return fmt.Sprintf("admin@bench%d.onmicrosoft.com", i) }

func workspaceID(tenant, j int) string {
	return fmt.Sprintf("be2%05d-%04d-4000-8000-000000000000", tenant%100000, j%10000)
}

// burstWorkspaceID is the Sentinel workspace of the burst: it lives in the
// bench's index-backed lake, not in the emulator.
const burstWorkspaceID = "be3b0000-0000-4000-8000-000000000000"

func burstIncidentName(i int) string { return fmt.Sprintf("be4b0000-0000-4000-8000-%012d", i) }
