package identity

import (
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/acme/cloudrun-istio-gke/internal/middleware"
	"github.com/labstack/echo/v4"
)

// Paths as the SDKs build them: "<emulator host>/<Google API host>/<path>".
// Colons are escaped because echo reads ":name" as a parameter.
const (
	toolkit = "/identitytoolkit.googleapis.com/v1"
	project = toolkit + "/projects/:project"
)

// Handler returns the whole REST surface of the emulator.
func (e *Emulator) Handler() http.Handler {
	ec := echo.New()
	ec.HideBanner, ec.HidePort = true, true
	ec.HTTPErrorHandler = e.handleError
	// Pre, so that CORS preflights, refused hosts and unrouted requests are
	// logged too; the layer's default body limit (1 MiB) is above maxBody.
	ec.Pre(middleware.Stack(middleware.Config{Component: "identity", Logger: e.log})...)
	ec.Pre(e.checkHost, e.cors, refuseAdminFromBrowsers)

	// Client API: what the Firebase JS SDK calls, with ?key=API_KEY.
	ec.POST(toolkit+`/accounts\:signUp`, e.signUp, requireAPIKey)
	ec.POST(toolkit+`/accounts\:signInWithPassword`, e.signInWithPassword, requireAPIKey)
	ec.POST(toolkit+`/accounts\:lookup`, e.lookup, requireAPIKey)
	ec.POST(toolkit+`/accounts\:update`, e.update, requireAPIKey)
	ec.POST(toolkit+`/accounts\:delete`, e.deleteAccount, requireAPIKey)
	ec.POST(toolkit+`/accounts\:sendOobCode`, e.sendOobCode, requireAPIKey)
	ec.POST(toolkit+`/accounts\:signInWithCustomToken`, e.signInWithCustomToken, requireAPIKey)
	ec.POST(toolkit+`/accounts\:signInWithEmailLink`, e.signInWithEmailLink, requireAPIKey)
	ec.POST(toolkit+`/accounts\:resetPassword`, e.resetPassword, requireAPIKey)
	ec.POST("/securetoken.googleapis.com/v1/token", e.refresh, requireAPIKey)

	// Admin API: what the Firebase Admin Go SDK calls, as "Bearer owner".
	admin := ec.Group(project, e.requireAdmin)
	admin.POST("/accounts", e.createAccount)
	admin.POST(`/accounts\:lookup`, e.lookup)
	admin.POST(`/accounts\:update`, e.update)
	admin.POST(`/accounts\:delete`, e.deleteAccount)
	admin.GET(`/accounts\:batchGet`, e.listAccounts)
	admin.POST(`/accounts\:sendOobCode`, e.sendOobCode)
	admin.POST(`/accounts\:batchDelete`, e.batchDelete)
	admin.POST(`/accounts\:batchCreate`, e.batchCreate)
	admin.POST(`/accounts\:query`, e.queryAccounts)
	// Methods on the project itself ("projects/p:createSessionCookie").
	ec.POST(project, e.projectMethod)
	ec.GET("/identitytoolkit.googleapis.com/v2/projects/:project/config", e.getConfig, e.requireAdmin)
	ec.PATCH("/identitytoolkit.googleapis.com/v2/projects/:project/config", e.updateConfig, e.requireAdmin)

	// The Firebase emulator's reset, used between tests.
	ec.DELETE("/emulator/v1/projects/:project/accounts", e.reset, e.requireAdmin)
	// The codes the emulator would have emailed, as the Firebase emulator
	// lists them, and its page that applies verification links.
	ec.GET("/emulator/v1/projects/:project/oobCodes", e.listOobCodes, e.checkProject)
	ec.GET(actionPath, e.action)

	// Key publication, at Google's paths.
	ec.GET(JWKSPath, e.jwks)
	ec.GET(X509Path, e.x509)
	// Where the Admin SDKs fetch session cookie keys outside emulator mode.
	ec.GET(SessionCookieKeysPath, e.x509)
	ec.GET("/securetoken.google.com/:project/.well-known/openid-configuration", e.discovery, e.checkProject)

	return ec
}

// SessionCookieKeysPath is Google's path of the certificates that sign
// session cookies; the emulator signs them with its ID token keys.
const SessionCookieKeysPath = "/identitytoolkit/v3/relyingparty/publicKeys"

// projectMethod serves "projects/{p}:method" paths, whose project and
// method echo sees as one path segment.
func (e *Emulator) projectMethod(c echo.Context) error {
	p, method, _ := strings.Cut(c.Param("project"), ":")
	c.SetParamNames("project")
	c.SetParamValues(p)
	switch method {
	case "createSessionCookie":
		return e.requireAdmin(e.createSessionCookie)(c)
	default:
		return methodNotFound(c)
	}
}

// methodNotFound answers a method the API does not have, naming it, as
// Google's APIs answer 404 for an unknown method.
func methodNotFound(c echo.Context) error {
	return &apiError{code: http.StatusNotFound, status: "NOT_FOUND",
		message: "Method not found: " + c.Request().Method + " " + c.Request().URL.Path + " is not a method of this API (or of this emulator)."}
}

// maxBody bounds every request body: the largest legitimate one (an update
// with custom claims, at most 1000 bytes by Google's rules) is far smaller.
const maxBody = 64 << 10

// corsHeaders are the request headers the Firebase JS SDK sends
// (_getAdditionalHeaders in @firebase/auth), plus Authorization.
var corsHeaders = strings.Join([]string{
	"Content-Type", "X-Client-Version", "X-Firebase-gmpid", "X-Firebase-Client",
	"X-Firebase-AppCheck", "X-Firebase-Locale", "X-Goog-Api-Client", "Authorization",
}, ", ")

// cors lets the SDK call the emulator from the frontend's origin, and only
// from there (Config.AllowedOrigins). A request that carries any other
// Origin is refused outright, not merely left without CORS headers: a
// "simple" cross-site POST is sent by the browser anyway, and would sign
// up or sign in against the developer's emulator from any page.
func (e *Emulator) cors(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req, h := c.Request(), c.Response().Header()
		origin := req.Header.Get("Origin")
		if origin == "" {
			return next(c)
		}
		h.Add("Vary", "Origin")
		if !e.origins[strings.ToLower(origin)] {
			return &apiError{code: http.StatusForbidden, status: "PERMISSION_DENIED",
				message: "Requests from origin " + origin + " are not allowed: add it to identity.Config.AllowedOrigins (devstack allows its frontend)."}
		}
		h.Set("Access-Control-Allow-Origin", origin)
		if req.Method == http.MethodOptions && req.Header.Get("Access-Control-Request-Method") != "" {
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
			h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS")
			h.Set("Access-Control-Allow-Headers", corsHeaders)
			h.Set("Access-Control-Max-Age", "3600")
			return c.NoContent(http.StatusNoContent)
		}
		return next(c)
	}
}

// refuseAdminFromBrowsers refuses the admin credential on any request that
// carries an Origin: browsers add one to every cross-origin request, the
// Admin SDK never does. Even the frontend's own pages have no business
// holding it.
func refuseAdminFromBrowsers(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if req := c.Request(); req.Header.Get("Origin") != "" && isAdmin(req) {
			return &apiError{code: http.StatusForbidden, status: "PERMISSION_DENIED",
				message: "The admin credential (Authorization: Bearer owner) is refused on a request from a browser page (it carries Origin); use it from a server, as the Admin SDK does."}
		}
		return next(c)
	}
}

// checkHost admits only requests that name a loopback host (localhost,
// 127.0.0.0/8, ::1) or one of Config.AllowedHosts, so that a page whose DNS
// name is rebound to 127.0.0.1 cannot reach the emulator under that name.
func (e *Emulator) checkHost(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		host := strings.ToLower(c.Request().Host)
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		ip := net.ParseIP(host)
		if host == "localhost" || (ip != nil && ip.IsLoopback()) || e.hosts[host] || e.hosts["*"] {
			return next(c)
		}
		return &apiError{code: http.StatusForbidden, status: "PERMISSION_DENIED",
			message: "Host " + strconv.Quote(c.Request().Host) + " is not served: name a loopback address, or add the host to identity.Config.AllowedHosts."}
	}
}

// requireAdmin admits the Admin SDK's emulator credential ("Bearer owner",
// what firebase.google.com/go/v4 sends when FIREBASE_AUTH_EMULATOR_HOST is
// set) for the right project.
func (e *Emulator) requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return e.checkProject(func(c echo.Context) error {
		if !isAdmin(c.Request()) {
			return &apiError{code: http.StatusUnauthorized, status: "UNAUTHENTICATED",
				message: "Request is missing required authentication credential: Authorization: Bearer owner"}
		}
		return next(c)
	})
}

// requireAPIKey refuses client calls without ?key=, as Google does, so that
// an app that forgot its API key fails locally too. Any key is accepted: the
// emulator has no project configuration to check it against. The admin
// credential stands in for a key, as an OAuth token does on Google.
func requireAPIKey(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if c.QueryParam("key") == "" && !isAdmin(c.Request()) {
			return &apiError{code: http.StatusForbidden, status: "PERMISSION_DENIED",
				message: "The request is missing a valid API key."}
		}
		return next(c)
	}
}

func isAdmin(r *http.Request) bool {
	return r.Header.Get("Authorization") == "Bearer owner"
}

func (e *Emulator) checkProject(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if p := c.Param("project"); p != e.project {
			return &apiError{code: http.StatusNotFound, status: "NOT_FOUND",
				message: "PROJECT_NOT_FOUND : this emulator serves project " + e.project}
		}
		return next(c)
	}
}
