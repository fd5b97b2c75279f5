package middleware

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"
	echomw "github.com/labstack/echo/v4/middleware"
)

// echoBodyLimit is echo's BodyLimit: 413 for a body declared or read past
// the limit. A handler that reads too far gets echo.ErrStatusRequestEntityTooLarge
// from the body and should return it.
func (l *layer) echoBodyLimit() echo.MiddlewareFunc {
	if l.limit < 0 {
		return func(next echo.HandlerFunc) echo.HandlerFunc { return next }
	}
	return echomw.BodyLimitWithConfig(echomw.BodyLimitConfig{Limit: strconv.FormatInt(l.limit, 10) + "B"})
}

// limitBody is the net/http form: a body declared too large is refused with
// 413 at once; any other is capped with http.MaxBytesReader, whose
// *http.MaxBytesError a handler reading too far should answer with 413.
func (l *layer) limitBody(w *responseWriter, r *http.Request) bool {
	if l.limit < 0 {
		return true
	}
	if r.ContentLength > l.limit {
		w.err = echo.ErrStatusRequestEntityTooLarge
		http.Error(w, http.StatusText(http.StatusRequestEntityTooLarge), http.StatusRequestEntityTooLarge)
		return false
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = http.MaxBytesReader(w, r.Body, l.limit)
	}
	return true
}
