package e2e

// Where the frontend's own security rules are written down, for the hostile
// table's doc column.
const (
	docFrontendRelay = "frontend/proxy.go secureJSON: one credential, verified by the frontend before the gateway, answered in the frontend's own words"
)
