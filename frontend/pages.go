package frontend

import (
	"errors"
	"net/http"

	"firebase.google.com/go/v4/auth"
	"github.com/a-h/templ"
	"github.com/acme/cloudrun-istio-gke/internal/idtoken"
	"github.com/acme/cloudrun-istio-gke/internal/middleware"
	"github.com/acme/cloudrun-istio-gke/web/components"
	"github.com/labstack/echo/v4"
)

// home renders the one page: signed in, the user's email and the secret
// message fetched from the backend; signed out, the sign-in card.
func (s *server) home(c echo.Context) error {
	r := c.Request()
	h := components.Home{Shell: s.shell(c, components.SessionNone)}
	h.SignIn = components.SignIn{Mode: components.ModeSignIn, GoogleSignIn: s.cfg.GoogleSignIn}
	if r.URL.Query().Get("mode") == string(components.ModeCreate) {
		h.SignIn.Mode = components.ModeCreate
	}

	raw, tok, err := s.currentUser(r)
	switch {
	case errors.Is(err, idtoken.ErrInvalidToken), errors.Is(err, errTwoCredentials):
		// Most often simply expired: the module refreshes it quietly if the
		// SDK still has the user, and shows the form otherwise.
		h.Shell.Session = components.SessionStale
		h.SignIn.Restoring = true
		c.SetCookie(newCookie(r, sessionCookieBase, "", -1))
		s.log.InfoContext(r.Context(), "session cookie refused", middleware.KeyError, err)
	case err != nil:
		return sessionRefused(err)
	case tok != nil:
		h.Shell.Session = components.SessionActive
		h.Account = &components.Account{Email: emailOf(tok), UID: tok.UID, EmailVerified: emailVerified(tok)}
		h.SignOutCSRF = h.Shell.Client.CSRFToken
		if !h.Account.EmailVerified {
			break // the page asks to verify; the gateway would refuse anyway
		}
		var err error
		h.Secret, err = s.secret(c, raw)
		if errors.Is(err, ErrUnauthorized) {
			// The gateway refused a token we accepted (it expired in
			// between, or was revoked): the module refreshes it quietly.
			h.Shell.Session = components.SessionStale
		}
	}
	// Pages carry personal data and a CSRF token: never cache them.
	c.Response().Header().Set("Cache-Control", "no-store")
	return render(c, http.StatusOK, components.HomePage(h))
}

// secret asks the backend for the secret message and explains a failure in
// the user's terms, with the request id to quote. The error, if any, is the
// backend call's, for the caller to branch on.
func (s *server) secret(c echo.Context, idToken string) (components.Secret, error) {
	ctx := c.Request().Context()
	id := middleware.RequestID(ctx)
	m, hops, err := s.gateway.SecureMessage(ctx, idToken)
	if err == nil {
		setServerTiming(c, hops)
		return components.Secret{Message: m.Message, Path: requestPath(hops, s.now())}, nil
	}
	s.log.WarnContext(ctx, "fetching the secret message failed", middleware.KeyError, err)
	p := &components.Problem{RequestID: id}
	switch {
	case errors.Is(err, ErrUnauthorized):
		p.Title = "Your session has expired. Sign in again."
		p.Detail = "The gateway did not accept your sign-in. We are refreshing it; if this stays, sign out and in again."
	case errors.Is(err, ErrForbidden):
		p.Title = "You are not allowed to read the secret message."
		p.Detail = "Your account is signed in but has no access to it. Ask an administrator if you think it should."
	default:
		p.Title = "The backend is unavailable right now."
		p.Detail = "Try again in a minute. If it keeps happening, quote the request id below."
	}
	return components.Secret{Problem: p}, err
}

// shell is what every page needs, for this request.
func (s *server) shell(c echo.Context, session components.Session) components.Shell {
	return components.Shell{
		Title:         "Acme Vault",
		StylesheetURL: s.assets.stylesheet,
		ScriptURL:     s.assets.script,
		Session:       session,
		Client: components.ClientConfig{
			APIKey:      s.cfg.FirebaseAPIKey,
			AuthDomain:  s.cfg.FirebaseAuthDomain,
			ProjectID:   s.cfg.ProjectID,
			EmulatorURL: s.cfg.emulatorURL(),
			CSRFToken:   csrfToken(c),
		},
	}
}

// emailVerified reads the email_verified claim. An account without an email
// (phone sign-in) has none to verify.
func emailVerified(tok *auth.Token) bool {
	if e, _ := tok.Claims["email"].(string); e == "" {
		return true
	}
	v, _ := tok.Claims["email_verified"].(bool)
	return v
}

// emailOf reads the email claim; a user signed in without one (a phone
// number, say) is shown by uid.
func emailOf(tok *auth.Token) string {
	if e, ok := tok.Claims["email"].(string); ok && e != "" {
		return e
	}
	return tok.UID
}

func render(c echo.Context, status int, t templ.Component) error {
	c.Response().Header().Set(echo.HeaderContentType, echo.MIMETextHTMLCharsetUTF8)
	c.Response().WriteHeader(status)
	return t.Render(c.Request().Context(), c.Response())
}
