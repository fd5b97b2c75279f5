// Package secureapi is the body of GET /api/secure.json, the contract
// between the backend, which answers it, and the frontend, which reads it:
// here so that neither deployable imports the other.
package secureapi

// SecureMessage is the body of GET /api/secure.json: the message and who
// called. UID and Email repeat a user's Caller fields at the top level, as
// the answer had them before workloads could call; the frontend reads them.
type SecureMessage struct {
	Message string `json:"message"`
	UID     string `json:"uid,omitempty"`
	Email   string `json:"email,omitempty"`
	// Caller is always set by the backend; a pointer so that a client
	// decoding an older answer, without it, writes none back (the frontend
	// relays this type).
	Caller *Caller `json:"caller,omitempty"`
}

// Caller is who called: a person ("user", with their uid and email) or a
// workload ("service-account", with the account's email).
type Caller struct {
	Kind  string `json:"kind"`
	UID   string `json:"uid,omitempty"`
	Email string `json:"email,omitempty"`
}

// Caller kinds.
const (
	CallerUser           = "user"
	CallerServiceAccount = "service-account"
)
