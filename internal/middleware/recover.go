package middleware

import (
	"fmt"
	"net/http"
	"runtime"

	"github.com/labstack/echo/v4"
	echomw "github.com/labstack/echo/v4/middleware"
)

// errPanic is what a client is told of a panic: a plain 500, never the
// panic's value, which may quote anything the handler held.
var errPanic = echo.NewHTTPError(http.StatusInternalServerError)

// maxStack bounds the stack logged with a panic.
const maxStack = 16 << 10

// logPanic logs a recovered panic with its stack in the message, where
// Error Reporting finds it.
// https://cloud.google.com/error-reporting/docs/formatting-error-messages
func (l *layer) logPanic(r *http.Request, v any, stack []byte) {
	l.cfg.Logger.ErrorContext(r.Context(), fmt.Sprintf("panic: %v\n\n%s", v, stack))
}

func (l *layer) echoRecover() echo.MiddlewareFunc {
	return echomw.RecoverWithConfig(echomw.RecoverConfig{
		StackSize:       maxStack,
		DisableStackAll: true, // this goroutine's stack, not every one's
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			l.logPanic(c.Request(), err, stack)
			return errPanic
		},
		// Returned, so that the access log hands it to the error handler
		// and logs the 500 the client got.
		DisableErrorHandler: true,
	})
}

// recoverHTTP is the net/http form: deferred around the handler, it answers
// 500 unless the response had begun (then the connection is all we can
// spoil, and net/http closes it).
func (l *layer) recoverHTTP(w *responseWriter, r *http.Request) {
	v := recover()
	if v == nil {
		return
	}
	if v == http.ErrAbortHandler {
		w.aborted = true
		panic(v) // net/http's way to abort a response on purpose
	}
	stack := make([]byte, maxStack)
	stack = stack[:runtime.Stack(stack, false)]
	l.logPanic(r, v, stack)
	w.err = errPanic
	if w.code == 0 {
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
	}
}
