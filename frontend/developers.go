package frontend

import (
	"cmp"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
	"golang.org/x/sync/errgroup"

	"github.com/acme/cloudrun-istio-gke/internal/idtoken"
	"github.com/acme/cloudrun-istio-gke/internal/middleware"
	"github.com/acme/cloudrun-istio-gke/web/components"
)

// The developers' page: a signed-in user's apps and API keys, through the
// management API of the decision service (managementapi.go). Handlers fetch and
// shape the data; web/components only renders it.

// maxAppName is the management API's limit, checked here first so the user
// reads our message rather than the API's.
const maxAppName = 100

// usageFetches bounds the usage calls one page makes at a time: a user may
// have up to 50 apps, and each is one call through the gateway.
const usageFetches = 4

// developer is the signed-in, verified user a developers' route acts for.
type developer struct {
	token string // the ID token, sent to the gateway as a bearer
	uid   string
	email string
}

// currentDeveloper returns the user, or ok=false when there is none to act
// for: the caller then sends the browser to the start page, which signs in,
// quietly refreshes an expired session, or asks to verify the email.
func (s *server) currentDeveloper(c echo.Context) (developer, bool, error) {
	r := c.Request()
	raw, tok, err := s.currentUser(r)
	switch {
	case errors.Is(err, idtoken.ErrInvalidToken), errors.Is(err, errTwoCredentials):
		return developer{}, false, nil
	case err != nil:
		return developer{}, false, sessionRefused(err)
	case tok == nil || !emailVerified(tok):
		return developer{}, false, nil
	}
	return developer{token: raw, uid: tok.UID, email: emailOf(tok)}, true, nil
}

// orToStart returns err, or with none, sends a browser without a usable
// session to the start page.
func orToStart(c echo.Context, err error) error {
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/")
}

// developers renders GET /developers. ?revoked=<app id> (where revoking
// redirects) says which app was just revoked.
func (s *server) developers(c echo.Context) error {
	dev, ok, err := s.currentDeveloper(c)
	if err != nil || !ok {
		return orToStart(c, err)
	}
	d := s.developersPage(c, dev)
	if id := c.QueryParam("revoked"); id != "" {
		for _, a := range d.Apps {
			if a.ID == id && a.Revoked != nil {
				d.Notice = "The key of " + a.Name + " is revoked: requests with it are refused from now on."
			}
		}
	}
	status := http.StatusOK
	if d.Problem != nil {
		status = http.StatusServiceUnavailable
	}
	return s.renderDevelopers(c, status, d)
}

// createApp handles POST /developers/apps (name, product...): it makes the
// app and shows its key, this once, in the answer. The answer is the page
// itself rather than a redirect, so the key never has to be kept anywhere
// to survive one.
func (s *server) createApp(c echo.Context) error {
	dev, ok, err := s.currentDeveloper(c)
	if err != nil || !ok {
		return orToStart(c, err)
	}
	ctx := c.Request().Context()
	form, err := c.FormParams()
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "That form could not be read. Reload the page and try again.").SetInternal(err)
	}
	f := components.NewAppForm{Name: strings.TrimSpace(form.Get("name")), Products: form["product"]}
	d := s.developersPage(c, dev)
	if d.Problem != nil {
		return s.renderDevelopers(c, http.StatusServiceUnavailable, d)
	}
	f.Error = checkNewApp(f, d.Products)
	if f.Error == "" {
		var created CreatedApp
		created, err = s.gateway.CreateApp(ctx, f.Name, f.Products, dev.token)
		switch {
		case err == nil:
			s.log.InfoContext(ctx, "app created", "app", created.App.ID, "uid", dev.uid)
			d = s.developersPage(c, dev) // the list now holds the new app
			d.NewKey = &components.NewKey{AppID: created.App.ID, AppName: created.App.Name, Key: created.Key}
			return s.renderDevelopers(c, http.StatusCreated, d)
		case errors.Is(err, ErrAppRefused):
			f.Error = refusalMessage(err)
			s.log.InfoContext(ctx, "app refused", "uid", dev.uid, middleware.KeyError, err)
		default:
			return s.developersFailed(c, d, "We could not create the app.", err)
		}
	}
	d.Form = f
	return s.renderDevelopers(c, http.StatusUnprocessableEntity, d)
}

// revokeApp handles POST /developers/apps/:id/revoke, then shows the page
// again (see other), so reloading it does not post again.
func (s *server) revokeApp(c echo.Context) error {
	dev, ok, err := s.currentDeveloper(c)
	if err != nil || !ok {
		return orToStart(c, err)
	}
	ctx, appID := c.Request().Context(), c.Param("id")
	app, err := s.gateway.RevokeApp(ctx, appID, dev.token)
	switch {
	case errors.Is(err, ErrNoSuchApp):
		return echo.NewHTTPError(http.StatusNotFound, "There is no such app among yours.").SetInternal(err)
	case err != nil:
		return s.developersFailed(c, s.developersPage(c, dev), "We could not revoke the key.", err)
	}
	s.log.InfoContext(ctx, "app revoked", "app", app.ID, "uid", dev.uid)
	return c.Redirect(http.StatusSeeOther, "/developers?revoked="+app.ID)
}

// developersFailed shows the page with why an action failed: 401 from the
// gateway means the session went stale (the module refreshes it), anything
// else that the service is unavailable.
func (s *server) developersFailed(c echo.Context, d components.Developers, title string, err error) error {
	id := middleware.RequestID(c.Request().Context())
	s.log.WarnContext(c.Request().Context(), "developers' page: "+title, middleware.KeyError, err)
	d.Problem = problemFor(title, err, id)
	if errors.Is(err, ErrUnauthorized) {
		d.Shell.Session = components.SessionStale
	}
	return s.renderDevelopers(c, http.StatusServiceUnavailable, d)
}

func (s *server) renderDevelopers(c echo.Context, status int, d components.Developers) error {
	// The page may carry a new key and always a CSRF token: never cache it.
	c.Response().Header().Set("Cache-Control", "no-store")
	return render(c, status, components.DevelopersPage(d))
}

// checkNewApp returns what is wrong with the create form, or "".
func checkNewApp(f components.NewAppForm, offered []components.ProductChoice) string {
	if f.Name == "" || utf8.RuneCountInString(f.Name) > maxAppName {
		return "Give the app a name of up to 100 characters."
	}
	if len(f.Products) == 0 {
		return "Pick at least one product."
	}
	for i, p := range f.Products {
		known := slices.ContainsFunc(offered, func(o components.ProductChoice) bool { return o.ID == p })
		if !known || slices.Contains(f.Products[:i], p) {
			return "Pick products from the list."
		}
	}
	return ""
}

// refusalMessage says in the page's words why the API refused an app.
func refusalMessage(err error) string {
	if ae, ok := errors.AsType[*APIError](err); ok && ae.Code == "too_many_apps" {
		return "You have as many apps as one account may have, revoked ones included."
	}
	return "The app could not be created as asked: check its name and products."
}

// problemFor explains a failed management call in the user's terms.
func problemFor(title string, err error, requestID string) *components.Problem {
	p := &components.Problem{Title: title, RequestID: requestID}
	switch {
	case errors.Is(err, ErrUnauthorized):
		p.Detail = "The gateway did not accept your sign-in. We are refreshing it; if this stays, sign out and in again."
	case errors.Is(err, ErrForbidden):
		p.Detail = "Your account may not manage API keys. Ask an administrator if you think it should."
	default:
		p.Detail = "The API-key service is unavailable right now. Try again in a minute; if it keeps happening, quote the request id below."
	}
	return p
}

// developersPage fetches what the page shows: the products, the user's
// apps, and each app's usage over the last day (which holds the last
// hour too) with its quota left. A failed usage call costs only that app's
// chart; a failed list, the page's Problem.
func (s *server) developersPage(c echo.Context, dev developer) components.Developers {
	ctx := c.Request().Context()
	id := middleware.RequestID(ctx)
	d := components.Developers{Shell: s.shell(c, components.SessionActive), Email: dev.email}
	d.CSRF = d.Shell.Client.CSRFToken
	d.Shell.Title = "Developers · Acme Vault"

	var products []Product
	var apps []App
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) { products, err = s.gateway.Products(gctx, dev.token); return err })
	g.Go(func() (err error) { apps, err = s.gateway.Apps(gctx, dev.token); return err })
	if err := g.Wait(); err != nil {
		s.log.WarnContext(ctx, "loading the developers' page", middleware.KeyError, err)
		d.Problem = problemFor("We could not load your apps.", err, id)
		if errors.Is(err, ErrUnauthorized) {
			d.Shell.Session = components.SessionStale
		}
		return d
	}
	names := make(map[string]string, len(products))
	for _, p := range products {
		names[p.ID] = p.Name
		d.Products = append(d.Products, components.ProductChoice{ID: p.ID, Name: p.Name, Description: p.Description,
			PerMinute: p.Quota.PerMinute, PerDay: p.Quota.PerDay})
	}
	slices.SortStableFunc(apps, func(a, b App) int { return b.Created.Compare(a.Created) })
	d.Apps = make([]components.DeveloperApp, len(apps))
	g = &errgroup.Group{}
	g.SetLimit(usageFetches)
	for i, a := range apps {
		d.Apps[i] = components.DeveloperApp{ID: a.ID, Name: a.Name, Created: a.Created, Revoked: a.Revoked}
		for _, p := range a.Products {
			d.Apps[i].Products = append(d.Apps[i].Products, cmp.Or(names[p], p))
		}
		g.Go(func() error {
			u, err := s.gateway.Usage(ctx, a.ID, "24h", dev.token)
			if err != nil {
				s.log.WarnContext(ctx, "loading an app's usage", "app", a.ID, middleware.KeyError, err)
				d.Apps[i].UsageProblem = "Usage is unavailable right now; reload the page in a minute."
				return nil
			}
			d.Apps[i].Usage = usageOf(u, names)
			return nil
		})
	}
	g.Wait()
	return d
}

// usageOf cuts a day of per-minute usage into the page's two charts: the
// last hour by minute and the last day by hour, both ending at u.To.
func usageOf(u AppUsage, names map[string]string) *components.AppUsage {
	out := &components.AppUsage{
		Hour: series(u.Minutes, u.To, time.Minute, 60, "last hour", "minute"),
		Day:  series(u.Minutes, u.To, time.Hour, 24, "last 24 hours", "hour"),
	}
	for _, q := range u.Quota {
		out.Quota = append(out.Quota, components.QuotaLeft{Product: cmp.Or(names[q.Product], q.Product),
			PerMinute: q.PerMinute, PerDay: q.PerDay, RemainingMinute: q.RemainingMinute, RemainingDay: q.RemainingDay})
	}
	return out
}

// series counts minutes into n buckets of step ending at end (exclusive).
// A request the check allowed answered 200; every other status is a refusal.
func series(minutes []UsageMinute, end time.Time, step time.Duration, n int, label, stepName string) components.UsageSeries {
	start := end.Add(-time.Duration(n) * step)
	s := components.UsageSeries{Label: label, Step: stepName, Buckets: make([]components.UsageBucket, n)}
	for i := range s.Buckets {
		s.Buckets[i].Start = start.Add(time.Duration(i) * step)
	}
	for _, m := range minutes {
		if m.Minute.Before(start) || !m.Minute.Before(end) {
			continue
		}
		b := &s.Buckets[int(m.Minute.Sub(start)/step)]
		allowed := m.ByStatus["200"]
		b.Allowed += allowed
		b.Refused += max(m.Requests-allowed, 0)
	}
	return s
}
