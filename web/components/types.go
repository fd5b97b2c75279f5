// Package components holds the frontend's templ components, one per concept:
// the page shell, the sign-in card, the account card, the secret message and
// the error card. They take typed arguments and only render: handlers in
// package frontend fetch the data. The developers' page's are in developers.*.
package components

// Session is the server's view of the browser's session, which the page hands
// to the sign-in module (body data-session) so it knows what to do.
type Session string

const (
	// SessionNone: no session cookie. The module shows the sign-in form, or,
	// if the SDK still has a signed-in user (the cookie expired), quietly
	// re-establishes the session.
	SessionNone Session = "none"
	// SessionActive: a verified session. The module keeps the cookie fresh.
	SessionActive Session = "active"
	// SessionStale: a cookie the server or gateway refused (expired, revoked,
	// forged). The module tries one quiet refresh before asking to sign in.
	SessionStale Session = "stale"
)

// Shell is what every page needs: where the assets are and what the browser
// module is told.
type Shell struct {
	Title         string
	StylesheetURL string
	ScriptURL     string
	Client        ClientConfig
	// Session is rendered as body data-session.
	Session Session
}

// ClientConfig is handed to the browser module as JSON. Nothing in it is a
// secret: the Firebase apiKey identifies the project and is public by
// design; the CSRF token is meant to be read by the page.
type ClientConfig struct {
	APIKey     string `json:"apiKey"`
	AuthDomain string `json:"authDomain"`
	ProjectID  string `json:"projectId"`
	// EmulatorURL is the Identity Platform emulator's origin, set only when
	// running locally; the module then calls connectAuthEmulator.
	EmulatorURL string `json:"emulatorUrl,omitempty"`
	CSRFToken   string `json:"csrfToken"`
}

// AuthMode is which variant of the sign-in card is shown.
type AuthMode string

const (
	ModeSignIn AuthMode = "signin"
	ModeCreate AuthMode = "create"
)

// SignIn describes the sign-in card.
type SignIn struct {
	Mode         AuthMode
	GoogleSignIn bool // offer "Continue with Google"
	// Restoring shows "Restoring your session…" instead of the form until
	// the module knows whether it can refresh the session quietly.
	Restoring bool
	// Notice, when set, explains why the user is asked to sign in.
	Notice string
}

// Account is the signed-in user as the page shows them.
type Account struct {
	Email string
	UID   string
	// EmailVerified is false until the user follows the verification link;
	// until then the page asks them to and shows no secret.
	EmailVerified bool
}

// Secret is the outcome of fetching the secret message from the backend:
// either the message or a problem the user can act on.
type Secret struct {
	Message string
	Problem *Problem
	// Path, when the hops reported it, is shown under the message.
	Path *RequestPath
}

// Problem is a failure explained to the user, with the request id they can
// quote to support.
type Problem struct {
	Title     string
	Detail    string
	RequestID string
}

// Home is the one page of the site.
type Home struct {
	Shell   Shell
	SignIn  SignIn   // shown when Account is nil
	Account *Account // the signed-in user
	Secret  Secret
	// SignOutCSRF is the CSRF token the sign-out form carries, so sign-out
	// works without JavaScript.
	SignOutCSRF string
}
