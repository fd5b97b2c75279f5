package apikeys

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/acme/cloudrun-istio-gke/internal/idtoken"
	"github.com/acme/cloudrun-istio-gke/internal/middleware"
)

// maxAppsPerOwner bounds what one user can make the store hold.
const maxAppsPerOwner = 50

// maxAppName bounds an app's name, in characters.
const maxAppName = 100

// apiError is an expected failure: the status and code the client sees, and
// the cause, which only the log sees.
type apiError struct {
	status  int
	code    string
	message string
	cause   error
}

func (e *apiError) Error() string {
	if e.cause == nil {
		return e.code
	}
	return e.code + ": " + e.cause.Error()
}
func (e *apiError) Unwrap() error { return e.cause }

var errNotYours = &apiError{status: http.StatusNotFound, code: "not_found", message: "No such app."}

// handleError is the one place errors become answers.
func (s *Service) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, body := http.StatusInternalServerError, ErrorBody{"internal", "Internal error."}
	var ae *apiError
	var he *echo.HTTPError
	switch {
	case errors.As(err, &ae):
		status, body = ae.status, ErrorBody{ae.code, ae.message}
	case errors.As(err, &he) && he.Code < 500:
		status = he.Code
		body = ErrorBody{"bad_request", http.StatusText(he.Code) + "."}
		if he.Code == http.StatusNotFound {
			body = ErrorBody{"not_found", "No such resource."}
		}
	}
	// The request's access line (internal/middleware) logs the error.
	middleware.Annotate(c.Request().Context(), slog.String(middleware.KeyReason, body.Error))
	if err := c.JSON(status, body); err != nil {
		s.log.ErrorContext(c.Request().Context(), "writing error answer", middleware.KeyError, err)
	}
}

const ctxOwner = "owner"

// requireUser admits callers whose bearer ID token verifies, as the backend
// does: the gateway checked it already, but a mesh policy mistake must not
// let anyone manage someone else's apps.
func (s *Service) requireUser(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		scheme, raw, ok := strings.Cut(c.Request().Header.Get("Authorization"), " ")
		raw = strings.TrimSpace(raw)
		if !ok || !strings.EqualFold(scheme, "Bearer") || raw == "" {
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="api"`)
			return &apiError{http.StatusUnauthorized, "unauthenticated", "A valid ID token is required.",
				errors.New("no bearer token")}
		}
		tok, err := s.verifier.Verify(c.Request().Context(), raw)
		if errors.Is(err, idtoken.ErrInvalidToken) {
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="api", error="invalid_token"`)
			return &apiError{http.StatusUnauthorized, "unauthenticated", "A valid ID token is required.", err}
		}
		if err != nil {
			return &apiError{http.StatusServiceUnavailable, "unavailable",
				"The request could not be authenticated right now; try again.", err}
		}
		c.Set(ctxOwner, tok.UID)
		// Istio's request.auth.principal: the user, as every hop logs it.
		middleware.Annotate(c.Request().Context(), slog.String(middleware.KeyRequestPrincipal, tok.Issuer+"/"+tok.Subject))
		return next(c)
	}
}

func owner(c echo.Context) string { return c.Get(ctxOwner).(string) }

// AppView is an app as the management API shows it: never the key's hash.
type AppView struct {
	ID       string     `json:"id"`
	Name     string     `json:"name"`
	Products []string   `json:"products"`
	Created  time.Time  `json:"created"`
	Revoked  *time.Time `json:"revoked,omitempty"`
	Active   bool       `json:"active"`
}

func viewApp(a App) AppView {
	v := AppView{ID: a.ID, Name: a.Name, Products: a.Products, Created: a.Created, Active: a.Active()}
	if !a.Active() {
		r := a.Revoked
		v.Revoked = &r
	}
	return v
}

// CreateAppRequest is the body of POST /apps.
type CreateAppRequest struct {
	Name     string   `json:"name"`
	Products []string `json:"products"`
}

// CreatedApp is the answer to POST /apps: the only time the key is shown.
type CreatedApp struct {
	App AppView `json:"app"`
	Key string  `json:"key"`
}

func (s *Service) listProducts(c echo.Context) error {
	return c.JSON(http.StatusOK, struct {
		Products []Product `json:"products"`
	}{s.catalog.Products})
}

func (s *Service) listApps(c echo.Context) error {
	apps, err := s.store.AppsByOwner(c.Request().Context(), owner(c))
	if err != nil {
		return err
	}
	views := make([]AppView, 0, len(apps))
	for _, a := range apps {
		views = append(views, viewApp(a))
	}
	return c.JSON(http.StatusOK, struct {
		Apps []AppView `json:"apps"`
	}{views})
}

func badRequest(msg string) error {
	return &apiError{status: http.StatusBadRequest, code: "bad_request", message: msg}
}

func (s *Service) createApp(c echo.Context) error {
	var req CreateAppRequest
	if err := (&echo.DefaultBinder{}).BindBody(c, &req); err != nil {
		return badRequest("The body must be JSON: {\"name\": ..., \"products\": [...]}.")
	}
	a, key, err := s.CreateApp(c.Request().Context(), owner(c), req.Name, req.Products)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, CreatedApp{App: viewApp(a), Key: key})
}

// CreateApp makes an app for owner with a fresh key for products, and
// returns the key: the only time it exists outside the caller's hands.
// devstack uses it to print a demo key; the management API for people.
func (s *Service) CreateApp(ctx context.Context, owner, name string, products []string) (App, string, error) {
	name = strings.TrimSpace(name)
	if name == "" || utf8.RuneCountInString(name) > maxAppName {
		return App{}, "", badRequest("name must be 1 to " + strconv.Itoa(maxAppName) + " characters.")
	}
	if len(products) == 0 {
		return App{}, "", badRequest("Pick at least one product.")
	}
	for i, id := range products {
		if _, ok := s.catalog.Product(id); !ok || slices.Contains(products[:i], id) {
			return App{}, "", badRequest("Unknown or repeated product " + strconv.Quote(id) + ".")
		}
	}
	if owner == "" {
		return App{}, "", errors.New("creating app: owner is required")
	}
	existing, err := s.store.AppsByOwner(ctx, owner)
	if err != nil {
		return App{}, "", fmt.Errorf("creating app: %w", err)
	}
	if len(existing) >= maxAppsPerOwner {
		return App{}, "", &apiError{status: http.StatusConflict, code: "too_many_apps",
			message: "You have " + strconv.Itoa(maxAppsPerOwner) + " apps, the most one user may have."}
	}
	key, hash := newKey()
	a := App{ID: newID("app"), Owner: owner, Name: name, Products: slices.Clone(products),
		KeyHash: hash, Created: s.now().UTC()}
	if err := s.store.CreateApp(ctx, a); err != nil {
		return App{}, "", fmt.Errorf("creating app: %w", err)
	}
	s.log.InfoContext(ctx, "app created", "app", a.ID, "owner", owner, "products", a.Products)
	return a, key, nil
}

// ownApp returns the app named in the path if the caller owns it. Another
// user's app is answered exactly as a missing one, so ids cannot be probed.
func (s *Service) ownApp(c echo.Context) (App, error) {
	a, err := s.store.App(c.Request().Context(), c.Param("id"))
	if errors.Is(err, ErrNotFound) || (err == nil && a.Owner != owner(c)) {
		return App{}, errNotYours
	}
	return a, err
}

func (s *Service) getApp(c echo.Context) error {
	a, err := s.ownApp(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, viewApp(a))
}

func (s *Service) revokeApp(c echo.Context) error {
	a, err := s.ownApp(c)
	if err != nil {
		return err
	}
	a, err = s.store.Revoke(c.Request().Context(), a.ID, s.now())
	if err != nil {
		return err
	}
	s.log.InfoContext(c.Request().Context(), "app revoked", "app", a.ID, "owner", a.Owner)
	return c.JSON(http.StatusOK, viewApp(a))
}

// UsageView is the answer to GET /apps/{id}/usage.
type UsageView struct {
	App     AppView           `json:"app"`
	From    time.Time         `json:"from"`
	To      time.Time         `json:"to"`
	Minutes []UsageMinuteView `json:"minutes"`
	Quota   []QuotaView       `json:"quota"`
}

// UsageMinuteView is one minute of usage.
type UsageMinuteView struct {
	Minute   time.Time        `json:"minute"`
	Requests int64            `json:"requests"`
	ByStatus map[string]int64 `json:"byStatus"`
	// LatencyMeanMs and LatencyMaxMs describe the check's decisions.
	LatencyMeanMs float64 `json:"latencyMeanMs"`
	LatencyMaxMs  float64 `json:"latencyMaxMs"`
}

// QuotaView is what is left of one product's quota now.
type QuotaView struct {
	Product         string `json:"product"`
	PerMinute       int64  `json:"perMinute"`
	PerDay          int64  `json:"perDay"`
	RemainingMinute int64  `json:"remainingMinute"`
	RemainingDay    int64  `json:"remainingDay"`
}

// usageWindows are the spans the usage API offers: the last hour and day.
var usageWindows = map[string]time.Duration{"1h": time.Hour, "24h": usageRetention}

func (s *Service) appUsage(c echo.Context) error {
	a, err := s.ownApp(c)
	if err != nil {
		return err
	}
	w := c.QueryParam("window")
	if w == "" {
		w = "1h"
	}
	span, ok := usageWindows[w]
	if !ok {
		return badRequest("window must be 1h or 24h.")
	}
	ctx := c.Request().Context()
	now := s.now().UTC()
	to := now.Truncate(time.Minute).Add(time.Minute)
	from := to.Add(-span)
	mins, err := s.store.Usage(ctx, a.ID, from, to)
	if err != nil {
		return err
	}
	v := UsageView{App: viewApp(a), From: from, To: to, Minutes: make([]UsageMinuteView, 0, len(mins))}
	for _, m := range mins {
		mv := UsageMinuteView{Minute: m.Minute, Requests: m.Count, ByStatus: map[string]int64{},
			LatencyMaxMs: ms(m.LatencyMax)}
		if m.Count > 0 {
			mv.LatencyMeanMs = ms(m.LatencySum / time.Duration(m.Count))
		}
		for st, n := range m.ByStatus {
			mv.ByStatus[strconv.Itoa(st)] = n
		}
		v.Minutes = append(v.Minutes, mv)
	}
	for _, id := range a.Products {
		p, ok := s.catalog.Product(id)
		if !ok {
			continue // dropped from the catalog since the app was made
		}
		um, ud, err := s.store.Used(ctx, a.ID, p.ID, now)
		if err != nil {
			return err
		}
		v.Quota = append(v.Quota, QuotaView{Product: p.ID, PerMinute: p.Quota.PerMinute, PerDay: p.Quota.PerDay,
			RemainingMinute: max(0, p.Quota.PerMinute-um), RemainingDay: max(0, p.Quota.PerDay-ud)})
	}
	return c.JSON(http.StatusOK, v)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
