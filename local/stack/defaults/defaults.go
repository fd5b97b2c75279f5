// Package defaults is devstack's addresses, names and demo user, as plain
// constants: local/stack starts with them, and tools that talk to a running
// devstack (cmd/loadtest) read them here without importing the stack, whose
// components would otherwise be linked into, and initialised in, every
// process the load tool measures.
package defaults

const (
	StateDir  = ".devstack"
	IstioDir  = "istio"
	ProjectID = "demo-acme" // a "demo-" project: the Firebase emulators treat it as local only
	// IdentityAddr is the Firebase Auth emulator's usual port.
	IdentityAddr = "127.0.0.1:9099"
	GoogleAddr   = "127.0.0.1:9300"
	BackendAddr  = "127.0.0.1:8081"
	GatewayAddr  = "127.0.0.1:8443"
	FrontendAddr = "127.0.0.1:8080"
	APIKeysAddr  = "127.0.0.1:9191" // the port of its Service in the cluster
	DemoEmail    = "demo@acme.test"
	DemoPassword = "correct-horse-battery"
	// GatewayServerName is the gateway's host name in istio/ and in its
	// certificate; the frontend reaches the gateway by IP, as it reaches the
	// internal load balancer in production, and names this host.
	GatewayServerName = "api.internal.example"
)
